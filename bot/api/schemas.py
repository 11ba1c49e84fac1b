"""Request and answer models of ``/api/v1``."""

from __future__ import annotations

import re
import zoneinfo
from typing import Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from nlu.entities import normalize_phone

Lifecycle = Literal["lead", "prospect", "customer", "churned"]
Status = Literal["bot", "pending", "open", "snoozed", "resolved"]
LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
TAG = re.compile(r"^[\w\-:.]{1,64}$", re.UNICODE)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def check_email(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid e-mail address ({exc})") from None


def check_phone(value: str | None, default_region: str | None = None) -> str | None:
    """E.164, as the bot stores what customers type: a national number (010-2222-3333) is read in
    ``default_region`` (the ``default_region`` setting), one with + and its country code anywhere."""
    if value is None:
        return None
    normalised = normalize_phone(value, regions=(default_region,) if default_region else ())
    if normalised is None:
        where = f" or a valid number in {default_region}" if default_region else ""
        raise ValueError(f"must be a valid international number such as +821012345678{where}")
    return normalised


def _region(info: ValidationInfo) -> str | None:
    """The ``default_region`` setting, handed to validation as context by bot.api.endpoints."""
    return (info.context or {}).get("default_region") if isinstance(info.context, dict) else None


def check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not an IANA time zone such as Asia/Seoul") from None
    return value


def check_tags(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    for tag in values:
        if not TAG.match(tag):
            raise ValueError(f"tag {tag!r} must be 1-64 letters, digits, - _ : .")
    return values


class CustomerFields(Strict):
    name: str | None = Field(default=None, max_length=200)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    locale: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    #: Never null: a customer always has a stage (left out, a new one starts as a lead).
    lifecycle_stage: Lifecycle = Field(default=None, description="Omit to keep (or, on create, to start as lead); null is refused.")  # type: ignore[assignment]

    _email = field_validator("email")(classmethod(lambda cls, v: check_email(v)))
    _phone = field_validator("phone")(classmethod(lambda cls, v, info: check_phone(v, _region(info))))
    _tz = field_validator("timezone")(classmethod(lambda cls, v: check_timezone(v)))

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        if value is not None and not LOCALE.match(value):
            raise ValueError("must be a language tag such as en or ko-KR")
        return value


class CustomerCreate(CustomerFields):
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list, max_length=100)

    _tags = field_validator("tags")(classmethod(lambda cls, v: check_tags(v)))


class CustomerUpdate(CustomerFields):
    attributes: dict[str, Any] | None = Field(default=None, description="Merged into the record; a null value removes the key.")
    tags: list[str] | None = Field(default=None, max_length=100, description="Replaces all tags.")
    add_tags: list[str] = Field(default_factory=list, max_length=100)
    remove_tags: list[str] = Field(default_factory=list, max_length=100)

    _tags = field_validator("tags", "add_tags", "remove_tags")(classmethod(lambda cls, v: check_tags(v)))


class MergeRequest(Strict):
    other_id: str = Field(description="The customer folded into this one; it is deleted after the merge.")


class Identity(BaseModel):
    channel: str
    external_id: str
    reachable: bool
    created_at: str


class ConsentOut(BaseModel):
    channel: str
    purpose: str
    granted: bool
    updated_at: str


class CustomerOut(BaseModel):
    id: str
    display_name: str = Field(description="The name, else the e-mail, phone, platform username, else \"Visitor #\" and a short id.")
    name: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    locale: str | None
    timezone: str | None
    lifecycle_stage: Lifecycle
    attributes: dict[str, Any]
    tags: list[str]
    last_seen_at: str | None
    created_at: str
    updated_at: str
    identities: list[Identity] | None = None
    consents: list[ConsentOut] | None = None


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None


class PageQuery(Strict):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=64)


class CustomerQuery(PageQuery):
    email: str | None = None
    phone: str | None = None
    tag: str | None = None
    #: Never null: a customer always has a stage (left out, a new one starts as a lead).
    lifecycle_stage: Lifecycle = Field(default=None, description="Omit to keep (or, on create, to start as lead); null is refused.")  # type: ignore[assignment]
    channel: str | None = None
    q: str | None = Field(default=None, max_length=200, description="Search in name, e-mail and phone.")


class ConversationOut(BaseModel):
    id: str
    customer_id: str
    channel: str
    status: Status
    assignee_id: str | None
    team: str | None
    priority: str
    created_at: str
    updated_at: str
    last_message_at: str | None
    snoozed_until: str | None
    first_response_at: str | None
    first_response_seconds: float | None
    resolved_at: str | None
    resolution_seconds: float | None


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class ConversationQuery(PageQuery):
    status: Status | None = None
    channel: str | None = None
    customer_id: str | None = None
    team: str | None = None


class MessageOut(BaseModel):
    id: str
    conversation_id: str
    customer_id: str
    channel: str
    direction: Literal["in", "out", "sys"]
    sender_kind: Literal["customer", "bot", "agent", "system"]
    sender_agent_id: str | None
    sender_name: str | None = Field(default=None, description="The agent's name on a person's reply, as the customer sees it.")
    text: str | None
    attachments: list[dict[str, Any]]
    buttons: list[dict[str, Any]]
    external_id: str | None
    intent: str | None
    status: str | None
    created_at: str
    edited_at: str | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class MessageQuery(Strict):
    limit: int = Field(default=100, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=64)


class AgentOut(BaseModel):
    id: str
    email: str
    name: str
    role: Literal["admin", "agent", "marketer"]
    active: bool
    created_at: str
