"""Personalized messages: Jinja2 in a sandbox, with per-channel variants and buttons.

A template sees ``customer`` (its fields, ``attributes``, ``tags`` and the
last scoring run's ``scores``), ``recommendations`` (the scoring run's
picks for the customer, best first: ``{{ recommendations[0].name }}``) and
``channel``.  A score the customer has none of (no purchase, not scored yet)
is undefined, as is a recommendation past the last.  Undefined names fail the render rather than print nothing, so a
template that cannot be filled for one customer skips that customer with the
reason and never sends a half-rendered message; ``default`` fills gaps on
purpose (``{{ customer.first_name | default("there", true) }}``).  Python
internals (``{{ ''.__class__ }}``) are refused when the campaign is saved, and
the sandbox refuses them again at render time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEXT = 4096
MAX_BUTTONS = 10
#: Keys a variant may pass to its channel (formatting hints the channels understand).
VARIANT_METADATA = ("parse_mode", "mrkdwn", "disable_web_page_preview")


class TemplateRefused(ValueError):
    """A template that cannot be saved; ``field`` is where (``message.variants.<channel>.text``)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RenderFailed(Exception):
    """One customer's message could not be filled; the reason is kept on the skip."""


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape, trim_blocks=True, lstrip_blocks=True)
    env.globals.clear()  # no range(), lipsum(), dict(), cycler ... : a message needs the customer and filters
    return env


PLAIN = _environment(False)
ESCAPED = _environment(True)  # for variants formatted as HTML: a customer's name cannot inject markup


def _private_names(tree: nodes.Template) -> Iterator[str]:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name, nodes.Const)):
        if isinstance(node, nodes.Const):  # attr('__class__') and the like
            name = node.value if isinstance(node.value, str) and node.value.startswith("__") else ""
        elif isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem):
            name = node.arg.value if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) else ""
        else:
            name = node.name
        if name.startswith("_"):
            yield name


def _reads(tree: nodes.Template) -> set[str]:
    """Which optional parts of the context a template reads: ``scores`` (``customer.scores``) and ``recommendations``,
    so that a run loads them only for campaigns that use them."""
    found: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if isinstance(node, nodes.Name) and node.name == "recommendations":
            found.add("recommendations")
        elif isinstance(node, nodes.Getattr) and node.attr == "scores":
            found.add("scores")
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and node.arg.value == "scores":
            found.add("scores")
    return found


@dataclass(slots=True)
class Part:
    """One message as the channel gets it: text, buttons (title templates and fixed payloads), channel hints."""

    text: Any
    buttons: list[tuple[Any, str]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    reads: set[str] = field(default_factory=set)


def _compile(env: ImmutableSandboxedEnvironment, source: Any, where: str, reads: set[str]) -> Any:
    if not isinstance(source, str) or not source.strip():
        raise TemplateRefused("must be a non-empty text", where)
    if len(source) > MAX_TEXT:
        raise TemplateRefused(f"is longer than {MAX_TEXT} characters", where)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateRefused(f"line {exc.lineno}: {exc.message}", where) from None
    if private := next(_private_names(tree), None):
        raise TemplateRefused(f"may not reach for {private} (Python internals are not available to templates)", where)
    reads |= _reads(tree)
    try:
        template = env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateRefused(f"line {exc.lineno}: {exc.message}", where) from None
    pieces = _plain_pieces(tree) if env is PLAIN else None
    return template if pieces is None else SubstitutionTemplate(template, pieces)


#: Names a dict answers as attributes (``customer.items`` is the method to Jinja): never looked up as keys here.
_DICT_ATTRIBUTES = frozenset(dir(dict))


def _plain_pieces(tree: nodes.Template) -> list[str | tuple[str, ...]] | None:
    """Text and ``customer.a.b`` / ``customer['a']`` / ``channel`` look-ups, when that is all a template is; else None."""
    pieces: list[str | tuple[str, ...]] = []
    for output in tree.body:
        if not isinstance(output, nodes.Output):
            return None
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                pieces.append(node.data)
                continue
            path: list[str] = []
            while isinstance(node, nodes.Getattr | nodes.Getitem):
                key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
                if not isinstance(node, nodes.Getattr) and not isinstance(node.arg, nodes.Const):
                    return None
                if not isinstance(key, str) or key in _DICT_ATTRIBUTES:
                    return None
                path.append(key)
                node = node.node
            if not isinstance(node, nodes.Name) or node.name not in ("customer", "channel"):
                return None
            pieces.append((node.name, *reversed(path)))
    return pieces


class SubstitutionTemplate:
    """A template that only places customer fields in text, filled by dict look-ups instead of Jinja.

    A broadcast renders one message per recipient; Jinja's context and
    sandbox cost most of the time of planning one (measured 32 of 78 µs a
    member).  The look-ups are the ones Jinja would make (a dict's key, for
    names that are no dict attribute) and a value is printed with ``str``
    as Jinja prints it; anything else (a missing key, a value that is not a
    dict on the way) is left to Jinja, so errors and their messages are
    Jinja's own.
    """

    __slots__ = ("template", "pieces")

    def __init__(self, template: Any, pieces: list[str | tuple[str, ...]]) -> None:
        self.template = template
        self.pieces = pieces

    def render(self, context: Mapping[str, Any]) -> str:
        out: list[str] = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            value: Any = context
            for key in piece:
                if type(value) is not dict or key not in value:
                    return str(self.template.render(context))
                value = value[key]
            out.append(str(value))
        return "".join(out)


def _part(spec: Mapping[str, Any], where: str) -> Part:
    if not isinstance(spec, Mapping):
        raise TemplateRefused("must be an object with text and buttons", where)
    unknown = set(spec) - {"text", "buttons", "metadata"}
    if unknown:
        raise TemplateRefused(f"unknown key {sorted(unknown)[0]} (allowed: text, buttons, metadata)", where)
    metadata = spec.get("metadata") or {}
    if not isinstance(metadata, Mapping) or set(metadata) - set(VARIANT_METADATA):
        raise TemplateRefused(f"metadata may hold only {', '.join(VARIANT_METADATA)}", f"{where}.metadata")
    env = ESCAPED if str(metadata.get("parse_mode", "")).upper() == "HTML" else PLAIN
    buttons = spec.get("buttons") or []
    if not isinstance(buttons, list) or len(buttons) > MAX_BUTTONS:
        raise TemplateRefused(f"must be a list of at most {MAX_BUTTONS} buttons", f"{where}.buttons")
    compiled: list[tuple[Any, str]] = []
    reads: set[str] = set()
    for i, button in enumerate(buttons):
        at = f"{where}.buttons[{i}]"
        if not isinstance(button, Mapping) or not isinstance(button.get("payload"), str) or not button["payload"]:
            raise TemplateRefused("a button needs a title and a payload", at)
        compiled.append((_compile(env, button.get("title"), f"{at}.title", reads), button["payload"][:256]))
    return Part(_compile(env, spec.get("text"), f"{where}.text", reads), compiled, dict(metadata), reads)


@dataclass(slots=True)
class MessageTemplate:
    """A campaign message compiled once: the default part and one per channel that has a variant."""

    default: Part
    variants: dict[str, Part]

    @property
    def reads(self) -> set[str]:
        """``scores`` and/or ``recommendations`` if any part reads them (see :func:`_reads`)."""
        return set().union(self.default.reads, *(part.reads for part in self.variants.values()))

    def render(self, channel: str, customer: Mapping[str, Any], recommendations: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """The outbox payload for one customer on ``channel``; ``RenderFailed`` names what was missing."""
        part = self.variants.get(channel, self.default)
        context = {"customer": customer, "channel": channel, "recommendations": list(recommendations)}
        try:
            text = part.text.render(context).strip()
            buttons = [{"title": title.render(context).strip()[:64], "payload": payload} for title, payload in part.buttons] \
                if part.buttons else []
        except TemplateError as exc:  # undefined names, sandbox refusals (SecurityError is one)
            note = f" (the customer has {len(recommendations)} recommendations)" if "recommendations" in part.reads \
                and "list object has no element" in str(exc) else ""
            raise RenderFailed(f"{type(exc).__name__}: {exc}{note}"[:300]) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise RenderFailed(f"{type(exc).__name__}: {exc}"[:300]) from None
        if not text:
            raise RenderFailed("the message is empty for this customer")
        if buttons and not all(b["title"] for b in buttons):
            raise RenderFailed("a button title is empty for this customer")
        payload: dict[str, Any] = {"text": text[:MAX_TEXT]}
        if buttons:
            payload["buttons"] = buttons
        if part.metadata:
            payload["metadata"] = dict(part.metadata)
        return payload


def compile_message(message: Mapping[str, Any], where: str = "message") -> MessageTemplate:
    """``{"text", "buttons"?, "variants"?: {channel: {"text", "buttons"?, "metadata"?}}}``, refused with the place named."""
    if not isinstance(message, Mapping):
        raise TemplateRefused("must be an object with text", where)
    variants = message.get("variants") or {}
    if not isinstance(variants, Mapping):
        raise TemplateRefused("must map channel names to messages", f"{where}.variants")
    default = _part({k: v for k, v in message.items() if k != "variants"}, where)
    return MessageTemplate(default, {str(ch): _part(spec, f"{where}.variants.{ch}") for ch, spec in variants.items()})


def customer_context(row: Mapping[str, Any], tags: list[str], scores: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a template sees of a customer: plain data only (no store objects reach the sandbox).  Scores without a
    value are left out, so ``{{ customer.scores.clv }}`` fails the render (or takes its ``default``) rather than print None."""
    get = row.get
    return {"id": str(row["id"]), "name": get("name"), "first_name": get("first_name"), "last_name": get("last_name"),
            "email": get("email"), "phone": get("phone"), "locale": get("locale"), "timezone": get("timezone"),
            "lifecycle_stage": get("lifecycle_stage"), "attributes": dict(get("attributes") or {}), "tags": sorted(tags),
            "scores": {k: v for k, v in scores.items() if v is not None} if scores else {}}
