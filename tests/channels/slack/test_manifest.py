"""The Slack app manifest asks for what the channel uses, and points at its routes."""

from __future__ import annotations

from pathlib import Path

import yaml

from channels.slack import EVENTS_PATH, INTERACTIONS_PATH

MANIFEST = Path(__file__).resolve().parents[3] / "slack-app-manifest.yml"


def test_the_manifest_declares_the_scopes_events_and_urls_the_channel_needs() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "chat:write", "im:history", "app_mentions:read", "users:read", "users:read.email", "channels:history"}
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["request_url"].endswith(EVENTS_PATH)
    assert {"app_mention", "message.im"} <= set(settings["event_subscriptions"]["bot_events"])
    assert settings["interactivity"]["request_url"].endswith(INTERACTIONS_PATH)
    assert settings["socket_mode_enabled"] is False
