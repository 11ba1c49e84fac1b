"""The plain objects a bot folder is read into, and the error that names what is wrong with one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.messages import Button
from nlu import FALLBACK_INTENT, OOS_INTENT


class BotFolderError(Exception):
    """A bot folder that cannot be used; the message names the file."""


PRIORITIES = ("low", "medium", "high", "urgent")
VALIDATORS = ("text", "email", "phone", "order_number", "any")
#: Slots validated as these go to the customer's own fields; others become attributes.
CUSTOMER_FIELD_FOR = {"email": "email", "phone": "phone"}
DEFAULT_ENTITY_FOR = {"email": "email", "phone": "phone_number", "order_number": "order_number"}
DEFAULT_ORDER_PATTERN = r"[A-Z]{0,4}-?\d{4,12}"
NOT_NLU_FILES = {"domain.yml", "rules.yml", "stories.yml", "config.yml", "credentials.yml", "endpoints.yml"}


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
    fallback_intents: frozenset[str] = frozenset({FALLBACK_INTENT, OOS_INTENT})
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
