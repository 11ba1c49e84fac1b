"""``domain.yml``: responses, slots, forms and the ``policy:`` block, checked as they are read."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

from bot.bot_folder.spec import (
    CUSTOMER_FIELD_FOR,
    DEFAULT_ENTITY_FOR,
    DEFAULT_ORDER_PATTERN,
    PRIORITIES,
    VALIDATORS,
    BotFolderError,
    FormSpec,
    HandoffTarget,
    PolicyConfig,
    ResponseVariant,
    SlotSpec,
)
from contracts.messages import Button

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
    "utter_waiting_for_person": [
        {"text": "Thanks, you're in the queue for a person on our team. They'll reply here as soon as they can."},
        {"text": "상담원 연결을 기다리고 계세요. 상담원이 곧 이곳에서 답변드릴게요.", "lang": "ko"},
    ],
    "utter_waiting_for_person_eta": [
        {"text": "Thanks, you're in the queue for a person on our team. Expected wait: {wait}."},
        {"text": "상담원 연결을 기다리고 계세요. 예상 대기 시간은 {wait}이에요.", "lang": "ko"},
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



_FORMATTER = string.Formatter()


def placeholders(path: Path, name: str, text: str) -> frozenset[str]:
    try:
        return frozenset(f.split(".")[0].split("[")[0] for _, f, _, _ in _FORMATTER.parse(text) if f)
    except ValueError as exc:
        raise BotFolderError(f"{path}: response {name} has a broken {{placeholder}}: {exc} (write {{{{ for a literal brace)") from None


def variant(path: Path, name: str, variation: Any) -> ResponseVariant:
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
        fields=placeholders(path, name, text) if text else frozenset(),
    )


def read_responses(path: Path, data: dict[str, Any]) -> dict[str, list[ResponseVariant]]:
    raw = data.get("responses") or {}
    if not isinstance(raw, dict):
        raise BotFolderError(f"{path}: responses must be a mapping of name to variations")
    responses: dict[str, list[ResponseVariant]] = {}
    for name, variations in raw.items():
        if not isinstance(variations, list) or not variations:
            raise BotFolderError(f"{path}: response {name} needs a list of variations")
        responses[str(name)] = [variant(path, str(name), v) for v in variations]
    return responses


def read_slots(path: Path, data: dict[str, Any]) -> dict[str, SlotSpec]:
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


def read_forms(path: Path, data: dict[str, Any], slots: dict[str, SlotSpec],
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


def handoff_target(path: Path, what: str, spec: Any, default: HandoffTarget | None = None) -> HandoffTarget:
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


def read_policy(path: Path, raw: Any) -> PolicyConfig:
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
                value = handoff_target(path, f"policy {key}", value)
            elif key == "routing":
                if not isinstance(value, dict):
                    raise ValueError("must map intents to {team, priority}")
                value = {str(k): handoff_target(path, f"policy routing {k}", v, HandoffTarget(policy.default_team)) for k, v in value.items()}
            elif key == "default_priority":
                if value not in PRIORITIES:
                    raise ValueError(f"must be one of {', '.join(PRIORITIES)}")
            else:
                value = str(value)
        except (TypeError, ValueError) as exc:
            raise BotFolderError(f"{path}: policy {key}: {exc}") from None
        setattr(policy, key, value)
    if "routing" in raw and "default_team" in raw:  # routing entries without a team take the default team
        policy.routing = {k: handoff_target(path, f"policy routing {k}", raw["routing"][k], HandoffTarget(policy.default_team))
                          for k in policy.routing}
    return policy
