"""The one list of channels.  Adding a platform adds one line here."""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: name -> "module:Class".  Each class may define ``Settings`` (a pydantic
#: model of its ``DANGOL_<NAME>_*`` keys), ``from_settings(settings)``
#: returning an instance or None when the channel is off, and ``commands``
#: ("module:group", a click group the ``dangol`` command mounts).
CHANNELS: dict[str, str] = {
    "rest": "channels.rest:RestChannel",
    "webchat": "channels.webchat:WebChatChannel",
    "telegram": "channels.telegram:TelegramChannel",
    "slack": "channels.slack:SlackChannel",
}


def channel_class(name: str) -> Any:
    return _resolve(CHANNELS[name])


def _resolve(reference: str) -> Any:
    module, _, attr = reference.partition(":")
    return getattr(import_module(module), attr)


def channel_commands() -> list[Any]:
    """The command groups channels bring to the ``dangol`` command (``dangol telegram …``)."""
    groups = []
    for name in CHANNELS:
        reference = getattr(channel_class(name), "commands", None)
        if reference:
            groups.append(_resolve(reference))
    return groups


def settings_mixins() -> list[type]:
    """Each channel's settings model, to be mixed into the main settings class."""
    mixins = []
    for name in CHANNELS:
        settings = getattr(channel_class(name), "Settings", None)
        if settings is not None:
            mixins.append(settings)
    return mixins


def channel_setting_problems(settings: Any) -> list[str]:
    """Messages naming what an incompletely configured channel is missing."""
    problems: list[str] = []
    for name in CHANNELS:
        check = getattr(channel_class(name), "check_settings", None)
        if check is not None:
            problems.extend(check(settings))
    return problems


def enabled_channels(settings: Any) -> list[Any]:
    """Instances of every channel whose settings turn it on."""
    channels = []
    for name in CHANNELS:
        channel = channel_class(name).from_settings(settings)
        if channel is not None:
            channels.append(channel)
    return channels
