"""A bot is a folder, as in Rasa: ``nlu.yml``, ``domain.yml`` and ``rules.yml``.

This module reads the folder into plain objects and reports mistakes with
the file and the problem, so that a broken bot stops ``dangol serve`` at
start rather than misbehaving in front of customers.

Rasa's formats are kept (``responses``, ``slots``, ``forms``, ``rules`` with
``condition: - active_loop``); Dangol's extensions are documented in
``examples/support-bot/README.md``: a ``handoff:`` rule step, ``lang:`` on a
response variation, ``validate:``/``personal:`` on slots and a ``policy:``
block in ``domain.yml``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crm_store.records import Button


class BotFolderError(Exception):
    """A bot folder that cannot be used; the message names the file."""


PRIORITIES = ("low", "medium", "high", "urgent")
VALIDATORS = ("text", "email", "phone", "order_number", "any")
#: Slots validated as these go to the customer's own fields; others become attributes.
CUSTOMER_FIELD_FOR = {"email": "email", "phone": "phone"}
DEFAULT_ENTITY_FOR = {"email": "email", "phone": "phone_number", "order_number": "order_number"}
DEFAULT_ORDER_PATTERN = r"[A-Z]{0,4}-?\d{4,12}"
NOT_NLU_FILES = {"domain.yml", "rules.yml", "stories.yml", "config.yml", "credentials.yml", "endpoints.yml"}

#: Responses the policy needs; a bot that does not define them gets these.
BUILTIN_RESPONSES: dict[str, list[dict[str, Any]]] = {
    "utter_default": [
        {"text": "Sorry, I didn't understand that. Could you say it another way?"},
        {"text": "죄송해요, 잘 이해하지 못했어요. 다르게 말씀해 주시겠어요?", "lang": "ko"},
    ],
    "utter_handoff": [
        {"text": "I'm passing this to a person on our team. Someone will reply here shortly."},
        {"text": "상담원에게 전달했어요. 곧 이곳에서 답변드릴게요.", "lang": "ko"},
    ],
    "utter_form_cancelled": [
        {"text": "No problem, I've stopped. Nothing was saved."},
        {"text": "알겠어요, 취소했어요. 입력하신 내용은 저장하지 않았어요.", "lang": "ko"},
    ],
    "utter_form_give_up": [
        {"text": "Sorry, I'm not getting this right. I'm passing you to a person who can help."},
        {"text": "제대로 도와드리지 못해 죄송해요. 상담원에게 연결해 드릴게요.", "lang": "ko"},
    ],
    "utter_invalid_email": [
        {"text": "“{value}” doesn't look like an e-mail address. Please write it like name@example.com."},
        {"text": "“{value}”은(는) 이메일 주소 형식이 아니에요. name@example.com 처럼 입력해 주세요.", "lang": "ko"},
    ],
    "utter_invalid_phone": [
        {"text": "I couldn't read “{value}” as a phone number. Please include the area code."},
        {"text": "“{value}”은(는) 전화번호로 인식되지 않아요. 지역번호까지 입력해 주세요.", "lang": "ko"},
    ],
    "utter_invalid_order_number": [
        {"text": "“{value}” doesn't look like an order number."},
        {"text": "“{value}”은(는) 주문번호 형식이 아니에요.", "lang": "ko"},
    ],
    "utter_invalid_text": [
        {"text": "Sorry, I need a short answer in words here."},
        {"text": "죄송해요, 짧게 글로 답해 주세요.", "lang": "ko"},
    ],
}


@dataclass(slots=True)
class ResponseVariant:
    text: str | None
    buttons: list[Button] = field(default_factory=list)
    image: str | None = None
    channel: str | None = None
    lang: str | None = None
    #: Placeholders the text uses (``{order_number}`` -> "order_number").
    fields: frozenset[str] = frozenset()


@dataclass(slots=True)
class Action:
    """One step a rule takes: ``response``, ``form`` (start it), ``deactivate``, ``handoff`` or ``restart``."""

    kind: str
    name: str | None = None
    team: str | None = None
    priority: str | None = None


#: The old name, kept for code that imported it.
RuleAction = Action


@dataclass(slots=True)
class SlotSpec:
    name: str
    validate: str = "text"
    entities: tuple[str, ...] = ()
    from_text: bool = True
    personal: bool = False
    consent_purpose: str = "support_contact"
    consent_channel: str | None = None
    #: Where the value goes on the customer: a field (email, phone), an attribute name, or None to keep it in the form.
    customer_field: str | None = None
    attribute: str | None = None
    pattern: re.Pattern[str] | None = None
    max_length: int = 500


@dataclass(slots=True)
class FormSpec:
    name: str
    required_slots: list[str]
    #: What happens once every slot is filled (Rasa's "submit" rule); a thank-you when empty.
    on_submit: list[Action] = field(default_factory=list)


@dataclass(slots=True)
class HandoffTarget:
    team: str
    priority: str = "medium"


@dataclass(slots=True)
class PolicyConfig:
    fallback_threshold: float = 0.0
    fallback_intents: frozenset[str] = frozenset({"nlu_fallback", "oos"})
    fallbacks_before_handoff: int = 2
    fallback_handoff: HandoffTarget = field(default_factory=lambda: HandoffTarget("support", "medium"))
    default_team: str = "support"
    default_priority: str = "medium"
    vip_tags: frozenset[str] = frozenset({"vip"})
    vip_handoff: HandoffTarget = field(default_factory=lambda: HandoffTarget("vip", "high"))
    cancel_intents: frozenset[str] = frozenset({"cancel", "stop"})
    human_intents: frozenset[str] = frozenset({"human_handoff"})
    phone_regions: tuple[str, ...] = ("KR", "US")
    max_form_attempts: int = 3
    languages: tuple[str, ...] = ("en", "ko")
    default_language: str = "en"
    routing: dict[str, HandoffTarget] = field(default_factory=dict)
    fallback_response: str = "utter_default"
    fallback_handoff_response: str = "utter_handoff"
    human_handoff_response: str = "utter_handoff"
    vip_response: str = "utter_handoff"
    cancelled_response: str = "utter_form_cancelled"
    give_up_response: str = "utter_form_give_up"

    def route(self, intent: str | None) -> HandoffTarget:
        return self.routing.get(intent or "") or HandoffTarget(self.default_team, self.default_priority)


@dataclass(slots=True)
class BotFolder:
    path: Path
    responses: dict[str, list[ResponseVariant]]
    rules: dict[str, list[Action]]
    nlu_files: list[Path]
    forms: dict[str, FormSpec] = field(default_factory=dict)
    slots: dict[str, SlotSpec] = field(default_factory=dict)
    #: Rules that apply only while a form runs: (form, intent) -> actions.
    form_rules: dict[tuple[str, str], list[Action]] = field(default_factory=dict)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    #: ``nlu.TrainingData`` of ``nlu_files`` (None without NLU files).
    training_data: Any = None

    def ask_response(self, form: str, slot: str) -> str:
        specific = f"utter_ask_{form}_{slot}"
        return specific if specific in self.responses else f"utter_ask_{slot}"


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise BotFolderError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BotFolderError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise BotFolderError(f"{path}: expected a mapping at the top level")
    return data


def load_bot_folder(path: str | Path) -> BotFolder:
    folder = Path(path)
    if not folder.is_dir():
        raise BotFolderError(f"bot folder {folder} does not exist")
    domain_path = folder / "domain.yml"
    if not domain_path.is_file():
        raise BotFolderError(f"{folder}: domain.yml is missing")
    domain = _load_yaml(domain_path)
    responses = _responses(domain_path, domain)
    slots = _slots(domain_path, domain)
    forms = _forms(domain_path, domain, slots, responses)
    policy = _policy(domain_path, domain.get("policy"))
    for name, variations in BUILTIN_RESPONSES.items():
        if name not in responses:
            responses[name] = [_variant(domain_path, name, v) for v in variations]
    for attr in ("fallback_response", "fallback_handoff_response", "human_handoff_response", "vip_response",
                 "cancelled_response", "give_up_response"):
        if getattr(policy, attr) not in responses:
            raise BotFolderError(f"{domain_path}: policy {attr} names response {getattr(policy, attr)} that is not defined")
    bot = BotFolder(path=folder, responses=responses, rules={}, nlu_files=[], forms=forms, slots=slots, policy=policy)
    rules_path = folder / "rules.yml"
    if rules_path.is_file():
        _rules(rules_path, _load_yaml(rules_path), bot)
    nlu_files = sorted(p for p in folder.glob("*.yml") if p.name not in NOT_NLU_FILES)
    nlu_files += sorted((folder / "data").glob("**/*.yml")) if (folder / "data").is_dir() else []
    bot.nlu_files = nlu_files
    bot.training_data = _training_data(nlu_files)
    return bot


def _training_data(files: list[Path]) -> Any:
    """The NLU files read now, so that ``dangol serve`` reports a bad one before it starts."""
    if not files:
        return None
    try:
        import nlu
    except ImportError:  # pragma: no cover - nlu ships with the bot
        return None
    try:
        return nlu.load_training_data([str(p) for p in files])
    except nlu.TrainingDataError as exc:
        raise BotFolderError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise BotFolderError(f"{files[0].parent}: cannot read the NLU data: {exc}") from None


# --- domain.yml ---------------------------------------------------------------------


_FORMATTER = string.Formatter()


def _placeholders(path: Path, name: str, text: str) -> frozenset[str]:
    try:
        return frozenset(f.split(".")[0].split("[")[0] for _, f, _, _ in _FORMATTER.parse(text) if f)
    except ValueError as exc:
        raise BotFolderError(f"{path}: response {name} has a broken {{placeholder}}: {exc} (write {{{{ for a literal brace)") from None


def _variant(path: Path, name: str, variation: Any) -> ResponseVariant:
    if not isinstance(variation, dict) or not (variation.get("text") or variation.get("image")):
        raise BotFolderError(f"{path}: every variation of {name} needs text or image")
    buttons = []
    for b in variation.get("buttons") or []:
        if not isinstance(b, dict) or "title" not in b or "payload" not in b:
            raise BotFolderError(f"{path}: a button of {name} needs a title and a payload")
        buttons.append(Button(str(b["title"]), str(b["payload"])))
    text = variation.get("text")
    if text is not None and not isinstance(text, str):
        text = str(text)
    lang = variation.get("lang")
    return ResponseVariant(
        text=text, buttons=buttons, image=variation.get("image"),
        channel=str(variation["channel"]) if variation.get("channel") else None,
        lang=str(lang).lower() if lang else None,
        fields=_placeholders(path, name, text) if text else frozenset(),
    )


def _responses(path: Path, data: dict[str, Any]) -> dict[str, list[ResponseVariant]]:
    raw = data.get("responses") or {}
    if not isinstance(raw, dict):
        raise BotFolderError(f"{path}: responses must be a mapping of name to variations")
    responses: dict[str, list[ResponseVariant]] = {}
    for name, variations in raw.items():
        if not isinstance(variations, list) or not variations:
            raise BotFolderError(f"{path}: response {name} needs a list of variations")
        responses[str(name)] = [_variant(path, str(name), v) for v in variations]
    return responses


def _slots(path: Path, data: dict[str, Any]) -> dict[str, SlotSpec]:
    raw = data.get("slots") or {}
    if not isinstance(raw, dict):
        raise BotFolderError(f"{path}: slots must be a mapping of name to settings")
    slots: dict[str, SlotSpec] = {}
    for name, spec in raw.items():
        name = str(name)
        spec = spec or {}
        if not isinstance(spec, dict):
            raise BotFolderError(f"{path}: slot {name} must be a mapping")
        validate = str(spec.get("validate") or ("email" if name == "email" else "phone" if name == "phone" else "text"))
        if validate not in VALIDATORS:
            raise BotFolderError(f"{path}: slot {name} has validate: {validate}; expected one of {', '.join(VALIDATORS)}")
        entities: list[str] = []
        from_text = False
        mappings = spec.get("mappings")
        if mappings is None:
            from_text = True
        elif not isinstance(mappings, list):
            raise BotFolderError(f"{path}: slot {name}: mappings must be a list")
        for mapping in mappings or []:
            kind = mapping.get("type") if isinstance(mapping, dict) else None
            if kind == "from_entity":
                if not mapping.get("entity"):
                    raise BotFolderError(f"{path}: slot {name}: a from_entity mapping needs an entity")
                entities.append(str(mapping["entity"]))
            elif kind == "from_text":
                from_text = True
            elif kind in ("from_intent", "from_trigger_intent", "custom"):
                raise BotFolderError(f"{path}: slot {name}: mapping type {kind} is not supported (use from_entity or from_text)")
            else:
                raise BotFolderError(f"{path}: slot {name}: unknown mapping {mapping!r}")
        if not entities and validate in DEFAULT_ENTITY_FOR:
            entities.append(DEFAULT_ENTITY_FOR[validate])
        pattern = None
        if spec.get("pattern") is not None or validate == "order_number":
            source = str(spec.get("pattern") or DEFAULT_ORDER_PATTERN)
            try:
                pattern = re.compile(source, re.IGNORECASE)
            except re.error as exc:
                raise BotFolderError(f"{path}: slot {name}: pattern {source!r} is not a valid regular expression: {exc}") from None
        customer_field = CUSTOMER_FIELD_FOR.get(validate)
        attribute = spec.get("attribute")
        if attribute is not None:
            customer_field = None
        elif customer_field is None:
            attribute = name
        if spec.get("store") is False:
            customer_field, attribute = None, None
        consent_purpose = str(spec.get("consent_purpose") or "support_contact")
        if len(consent_purpose) > 32:
            raise BotFolderError(f"{path}: slot {name}: consent_purpose is longer than 32 characters")
        slots[name] = SlotSpec(
            name=name, validate=validate, entities=tuple(entities), from_text=from_text,
            personal=bool(spec.get("personal", False)), consent_purpose=consent_purpose,
            consent_channel=str(spec["consent_channel"]) if spec.get("consent_channel") else None,
            customer_field=customer_field, attribute=str(attribute) if attribute else None, pattern=pattern,
            max_length=int(spec.get("max_length") or 500),
        )
    return slots


def _forms(path: Path, data: dict[str, Any], slots: dict[str, SlotSpec],
           responses: dict[str, list[ResponseVariant]]) -> dict[str, FormSpec]:
    raw = data.get("forms") or {}
    if not isinstance(raw, dict):
        raise BotFolderError(f"{path}: forms must be a mapping of name to settings")
    forms: dict[str, FormSpec] = {}
    for name, spec in raw.items():
        name = str(name)
        required = (spec or {}).get("required_slots") if isinstance(spec, dict) else None
        if not isinstance(required, list) or not required:
            raise BotFolderError(f"{path}: form {name} needs a non-empty list of required_slots")
        for slot in required:
            if str(slot) not in slots:
                raise BotFolderError(f"{path}: form {name} requires slot {slot} that slots: does not define")
            if f"utter_ask_{name}_{slot}" not in responses and f"utter_ask_{slot}" not in responses:
                raise BotFolderError(f"{path}: form {name} needs a response utter_ask_{slot} to ask for {slot}")
        forms[name] = FormSpec(name=name, required_slots=[str(s) for s in required])
    return forms


def _target(path: Path, what: str, spec: Any, default: HandoffTarget | None = None) -> HandoffTarget:
    if isinstance(spec, str):
        spec = {"team": spec}
    if not isinstance(spec, dict):
        raise BotFolderError(f"{path}: {what} must be a mapping with team and priority")
    priority = str(spec.get("priority") or (default.priority if default else "medium"))
    if priority not in PRIORITIES:
        raise BotFolderError(f"{path}: {what}: priority {priority} is not one of {', '.join(PRIORITIES)}")
    team = spec.get("team") or (default.team if default else None)
    if not team:
        raise BotFolderError(f"{path}: {what} needs a team")
    return HandoffTarget(str(team), priority)


def _names(path: Path, key: str, value: Any) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise BotFolderError(f"{path}: policy {key} must be a list")
    return frozenset(str(v) for v in value)


def _policy(path: Path, raw: Any) -> PolicyConfig:
    policy = PolicyConfig()
    if raw is None:
        return policy
    if not isinstance(raw, dict):
        raise BotFolderError(f"{path}: policy must be a mapping")
    known = set(PolicyConfig.__dataclass_fields__)
    for key, value in raw.items():
        if key not in known:
            raise BotFolderError(f"{path}: policy has an unknown setting {key} (known: {', '.join(sorted(known))})")
        try:
            if key == "fallback_threshold":
                value = float(value)
                if not 0.0 <= value <= 1.0:
                    raise ValueError("must be between 0 and 1")
            elif key in ("fallbacks_before_handoff", "max_form_attempts"):
                value = int(value)
                if value < 0:
                    raise ValueError("must not be negative")
            elif key in ("fallback_intents", "vip_tags", "cancel_intents", "human_intents"):
                value = _names(path, key, value)
            elif key in ("phone_regions", "languages"):
                value = tuple(str(v).upper() if key == "phone_regions" else str(v).lower() for v in (value if isinstance(value, list) else [value]))
            elif key in ("fallback_handoff", "vip_handoff"):
                value = _target(path, f"policy {key}", value)
            elif key == "routing":
                if not isinstance(value, dict):
                    raise ValueError("must map intents to {team, priority}")
                value = {str(k): _target(path, f"policy routing {k}", v, HandoffTarget(policy.default_team)) for k, v in value.items()}
            elif key == "default_priority":
                if value not in PRIORITIES:
                    raise ValueError(f"must be one of {', '.join(PRIORITIES)}")
            else:
                value = str(value)
        except (TypeError, ValueError) as exc:
            raise BotFolderError(f"{path}: policy {key}: {exc}") from None
        setattr(policy, key, value)
    if "routing" in raw and "default_team" in raw:  # routing entries without a team take the default team
        policy.routing = {k: _target(path, f"policy routing {k}", raw["routing"][k], HandoffTarget(policy.default_team))
                          for k in policy.routing}
    return policy


# --- rules.yml ----------------------------------------------------------------------


_IGNORED_ACTIONS = {"action_listen"}


def _action(path: Path, rule: str, step: dict[str, Any], bot: BotFolder) -> Action | None:
    if "action" in step:
        name = str(step["action"])
        if name in bot.responses:
            return Action("response", name)
        if name in bot.forms:
            return Action("form", name)
        if name == "action_deactivate_loop":
            return Action("deactivate")
        if name == "action_default_fallback":
            return Action("response", bot.policy.fallback_response)
        if name == "action_restart":
            return Action("restart")
        if name in _IGNORED_ACTIONS:
            return None
        if name.startswith("utter_"):
            raise BotFolderError(f"{path}: rule {rule!r} uses response {name} that domain.yml does not define")
        raise BotFolderError(f"{path}: rule {rule!r} uses action {name}, which is neither a response nor a form in domain.yml "
                             "(custom actions are not supported)")
    if "handoff" in step:
        spec = step["handoff"] or {}
        if isinstance(spec, str):
            spec = {"team": spec}
        if not isinstance(spec, dict):
            raise BotFolderError(f"{path}: rule {rule!r}: handoff takes {{team, priority}}")
        priority = spec.get("priority")
        if priority is not None and str(priority) not in PRIORITIES:
            raise BotFolderError(f"{path}: rule {rule!r}: priority {priority} is not one of {', '.join(PRIORITIES)}")
        return Action("handoff", team=str(spec["team"]) if spec.get("team") else None,
                      priority=str(priority) if priority else None)
    if "active_loop" in step or "slot_was_set" in step or "slot_was_not_set" in step or "checkpoint" in step:
        return None
    if "intent" in step or "or" in step:
        raise BotFolderError(f"{path}: rule {rule!r} has more than one user turn; a rule answers one message "
                             "(stories are not supported)")
    raise BotFolderError(f"{path}: rule {rule!r} has a step that is neither action nor handoff: {step}")


def _first_intents(path: Path, rule: str, step: dict[str, Any]) -> list[str]:
    if "intent" in step:
        return [str(step["intent"])]
    if "or" in step and isinstance(step["or"], list) and all(isinstance(s, dict) and "intent" in s for s in step["or"]):
        return [str(s["intent"]) for s in step["or"]]
    raise BotFolderError(f"{path}: rule {rule!r} must start with an intent step (or, under a form condition, the form's action)")


def _rules(path: Path, data: dict[str, Any], bot: BotFolder) -> None:
    raw = data.get("rules") or []
    if not isinstance(raw, list):
        raise BotFolderError(f"{path}: rules must be a list")
    where: dict[Any, str] = {}
    for rule in raw:
        if not isinstance(rule, dict):
            raise BotFolderError(f"{path}: every rule must be a mapping with rule and steps")
        name = str(rule.get("rule", "?"))
        steps = rule.get("steps") or []
        if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
            raise BotFolderError(f"{path}: rule {name!r} needs a list of steps")
        loop = None
        for cond in rule.get("condition") or []:
            if isinstance(cond, dict) and cond.get("active_loop"):
                loop = str(cond["active_loop"])
                if loop not in bot.forms:
                    raise BotFolderError(f"{path}: rule {name!r} has condition active_loop {loop}, which is not a form in domain.yml")
        first = steps[0]
        if loop and first.get("action") == loop:
            actions = [a for a in (_action(path, name, s, bot) for s in steps[1:]) if a is not None]
            if bot.forms[loop].on_submit:
                raise BotFolderError(f"{path}: rule {name!r}: form {loop} already has a submit rule ({where[('submit', loop)]!r})")
            bot.forms[loop].on_submit = actions
            where[("submit", loop)] = name
            continue
        intents = _first_intents(path, name, first)
        actions = [a for a in (_action(path, name, s, bot) for s in steps[1:]) if a is not None]
        if not actions:
            raise BotFolderError(f"{path}: rule {name!r} does nothing after the intent")
        for intent in intents:
            key: Any = (loop, intent) if loop else intent
            if key in where:
                raise BotFolderError(f"{path}: rules {where[key]!r} and {name!r} both answer intent {intent}"
                                     + (f" while {loop} runs" if loop else ""))
            where[key] = name
            if loop:
                bot.form_rules[(loop, intent)] = actions
            else:
                bot.rules[intent] = actions
