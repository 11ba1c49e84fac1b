"""Request and answer models of ``/api/v1``."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from crm_store.paging import CURSOR
from crm_store.teams import NAME
from nlu.entities import normalize_phone

Lifecycle = Literal["lead", "prospect", "customer", "churned"]
Status = Literal["bot", "pending", "open", "snoozed", "resolved"]
LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
TAG = re.compile(r"^[\w\-:.]{1,64}$", re.UNICODE)


CHANNEL = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")


def rule(**schema: Any) -> Any:
    """A value rule that a validator (here or in the store) checks, stated in the OpenAPI document too: what the
    document allows, the handler accepts (tests/service/test_api_schemathesis.py holds them to it), and the
    validator keeps its own message naming what is expected."""
    return Field(json_schema_extra=schema)


Tag = Annotated[str, rule(pattern=TAG.pattern)]
#: Team names, SLA policies' teams, canned responses' shortcuts.
Name = Annotated[str, rule(pattern=NAME.pattern)]
ChannelName = Annotated[str, rule(pattern=CHANNEL.pattern)]
#: An id given in a body or a query (a customer's, a segment's).
Id = Annotated[str, rule(format="uuid")]
Cursor = Annotated[str, rule(pattern=CURSOR.pattern)]
#: Formats of the document's own (no regular expression says which numbers or zones exist):
#: ``phone``: E.164 (+821012345678) or a national number read in the ``default_region`` setting;
#: ``iana-time-zone``: a zone of the IANA database, such as Asia/Seoul.
Phone = Annotated[str, rule(format="phone")]
TimeZone = Annotated[str, rule(format="iana-time-zone")]


def stripped_strings(schema: dict[str, Any]) -> None:
    """Strings are stripped before their length is checked, so one of spaces alone is as short as "": the document says
    a string that must not be empty holds something other than white space.  (A model with a schema hook of its own
    calls this first.)"""
    for prop in schema.get("properties", {}).values():
        for branch in [prop, *prop.get("anyOf", [])]:
            if branch.get("type") == "string" and branch.get("minLength", 0) >= 1 and "pattern" not in branch:
                branch["pattern"] = r"\S"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra=stripped_strings)


def check_email(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        # test_environment: an address at a .test domain (RFC 6761; staging systems and their exports) is well formed,
        # and Dangol sends no e-mail that it could bounce
        return validate_email(value, check_deliverability=False, test_environment=True).normalized.lower()
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


def in_utc(value: dt.datetime | None) -> dt.datetime | None:
    """An aware time in UTC, as the store keeps it (a naive one is read as UTC); an offset that carries it
    past year 1 or 9999 stops at that edge rather than failing the request."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        return (dt.datetime.min if value.year == 1 else dt.datetime.max).replace(tzinfo=dt.UTC)


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
    email: str | None = Field(default=None, max_length=320, json_schema_extra={"format": "email"})
    phone: Phone | None = Field(default=None, max_length=32)
    locale: str | None = Field(default=None, max_length=35, json_schema_extra={"pattern": LOCALE.pattern})
    timezone: TimeZone | None = Field(default=None, max_length=64)
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
    tags: list[Tag] = Field(default_factory=list, max_length=100)

    _tags = field_validator("tags")(classmethod(lambda cls, v: check_tags(v)))


class CustomerUpdate(CustomerFields):
    attributes: dict[str, Any] | None = Field(default=None, description="Merged into the record; a null value removes the key.")
    tags: list[Tag] | None = Field(default=None, max_length=100, description="Replaces all tags.")
    add_tags: list[Tag] = Field(default_factory=list, max_length=100)
    remove_tags: list[Tag] = Field(default_factory=list, max_length=100)

    _tags = field_validator("tags", "add_tags", "remove_tags")(classmethod(lambda cls, v: check_tags(v)))


class MergeRequest(Strict):
    other_id: Id = Field(description="The customer folded into this one; it is deleted after the merge.")


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
    cursor: Cursor | None = Field(default=None, description="The next_cursor of the page before.")


class CustomerQuery(PageQuery):
    email: str | None = None
    phone: Phone | None = None
    tag: str | None = None
    #: Never null: a customer always has a stage (left out, a new one starts as a lead).
    lifecycle_stage: Lifecycle = Field(default=None, description="Omit to keep (or, on create, to start as lead); null is refused.")  # type: ignore[assignment]
    channel: ChannelName | None = None
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
    channel: ChannelName | None = None
    customer_id: Id | None = None
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
    cursor: Cursor | None = Field(default=None, description="The next_cursor of the page before.")


class AgentOut(BaseModel):
    id: str
    email: str
    name: str
    role: Literal["admin", "agent", "marketer"]
    active: bool
    created_at: str
