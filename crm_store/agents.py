"""Agent accounts and their API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from crm_store.columns import new_id, utcnow
from crm_store.database import Database
from crm_store.models import ROLES, Agent, ApiToken

agents_t = Agent.__table__
tokens_t = ApiToken.__table__
TOKEN_PREFIX = "dgl_"
_hasher = PasswordHasher()


class AgentError(Exception):
    """Bad agent data; the message names the field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: uuid.UUID
    email: str
    name: str
    role: str
    active: bool
    created_at: dt.datetime
    #: Logged in with a generated one-time password: the console asks for a new one first.
    must_change_password: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": str(self.id), "email": self.email, "name": self.name, "role": self.role,
                "active": self.active, "created_at": self.created_at.isoformat()}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    try:
        # test_environment: an address at a .test domain (RFC 6761) is well formed; accounts get no e-mail from Dangol
        return validate_email(email, check_deliverability=False, test_environment=True).normalized.lower()
    except EmailNotValidError as exc:
        raise AgentError(f"email is not valid: {exc}", "email") from None


async def create_agent(db: Database, *, email: str, name: str, role: str, password: str | None = None,
                       must_change_password: bool = False) -> tuple[AgentRecord, str]:
    """Create the account and one API token; return the token in clear, once.

    ``must_change_password`` marks ``password`` as one-time (generated and shown
    once by the CLI): the console asks for a new one at the first login.
    """
    email = normalise_email(email)
    name = name.strip()
    if not name or len(name) > 200:
        raise AgentError("name must be 1 to 200 characters", "name")
    if role not in ROLES:
        raise AgentError(f"role must be one of {', '.join(ROLES)}", "role")
    if password is not None and len(password) < 8:
        raise AgentError("password must be at least 8 characters", "password")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    agent_id = new_id()
    try:
        async with db.write() as conn:
            await conn.execute(insert(agents_t).values(
                id=agent_id, email=email, name=name, role=role, active=True, created_at=now,
                password_hash=_hasher.hash(password) if password else None,
                password_must_change=bool(password) and must_change_password,
            ))
            await conn.execute(insert(tokens_t).values(id=new_id(), agent_id=agent_id, token_hash=hash_token(token), name="cli", created_at=now))
    except IntegrityError:
        raise AgentError(f"an agent with e-mail {email} already exists", "email") from None
    return AgentRecord(agent_id, email, name, role, True, now, bool(password) and must_change_password), token


async def agent_for_token(db: Database, token: str) -> AgentRecord | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    async with db.read() as conn:
        row = (await conn.execute(
            select(agents_t).join(tokens_t, tokens_t.c.agent_id == agents_t.c.id).where(tokens_t.c.token_hash == hash_token(token))
        )).first()
    if row is None or not row.active:
        return None
    return record_of(row)


# -- console logins and account management (issue 5) --------------------------
#: Verified against when the e-mail is unknown, so a wrong e-mail costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("dangol-not-a-password")


def record_of(row: Any) -> AgentRecord:
    """An ``agents`` row (or a row holding its columns) as a record."""
    return AgentRecord(row.id, row.email, row.name, row.role, row.active, row.created_at, bool(row.password_must_change))



async def agent_for_password(db: Database, email: str, password: str) -> AgentRecord | None:
    """The active account with this e-mail and password, or None (without saying which was wrong)."""
    try:
        email = normalise_email(email)
    except AgentError:
        email = email.strip().lower()
    async with db.read() as conn:
        row = (await conn.execute(select(agents_t).where(agents_t.c.email == email))).first()
    try:
        _hasher.verify(row.password_hash if row is not None and row.password_hash else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or not row.password_hash or not row.active:
        return None
    return record_of(row)


async def get_agent(db: Database, agent_id: uuid.UUID) -> AgentRecord | None:
    async with db.read() as conn:
        row = (await conn.execute(select(agents_t).where(agents_t.c.id == agent_id))).first()
    return record_of(row) if row is not None else None


async def list_agents(db: Database) -> list[AgentRecord]:
    async with db.read() as conn:
        rows = (await conn.execute(select(agents_t).order_by(agents_t.c.name, agents_t.c.id))).all()
    return [record_of(r) for r in rows]


async def update_agent(db: Database, agent_id: uuid.UUID, *, name: str | None = None, role: str | None = None,
                       active: bool | None = None, password: str | None = None) -> AgentRecord:
    values: dict[str, Any] = {}
    if name is not None:
        if not name.strip() or len(name) > 200:
            raise AgentError("name must be 1 to 200 characters", "name")
        values["name"] = name.strip()
    if role is not None:
        if role not in ROLES:
            raise AgentError(f"role must be one of {', '.join(ROLES)}", "role")
        values["role"] = role
    if active is not None:
        values["active"] = active
    if password is not None:
        if len(password) < 8:
            raise AgentError("password must be at least 8 characters", "password")
        values["password_hash"] = _hasher.hash(password)
        values["password_must_change"] = False
    async with db.write() as conn:
        if values:
            await conn.execute(update(agents_t).where(agents_t.c.id == agent_id).values(**values))
        row = (await conn.execute(select(agents_t).where(agents_t.c.id == agent_id))).first()
    if row is None:
        raise AgentError(f"agent {agent_id} does not exist", "agent_id")
    return record_of(row)


def generate_password() -> str:
    """A one-time password for a new account: 16 URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


async def set_password(db: Database, email: str, password: str, *, must_change: bool = False) -> AgentRecord:
    """``dangol agent set-password``: a new console password for the account with this e-mail.

    ``must_change`` makes it one-time (the console asks for a new one at the next login).
    """
    if len(password) < 8:
        raise AgentError("password must be at least 8 characters", "password")
    email = normalise_email(email)
    async with db.write() as conn:
        row = (await conn.execute(select(agents_t).where(agents_t.c.email == email))).first()
        if row is None:
            raise AgentError(f"no agent has the e-mail {email}", "email")
        await conn.execute(update(agents_t).where(agents_t.c.id == row.id).values(
            password_hash=_hasher.hash(password), password_must_change=must_change))
    return AgentRecord(row.id, row.email, row.name, row.role, row.active, row.created_at, must_change)


async def change_own_password(db: Database, agent_id: uuid.UUID, current: str, new: str) -> None:
    """The console's change-password form: the current password proves it is the owner."""
    if len(new) < 8:
        raise AgentError("the new password must be at least 8 characters", "new_password")
    if new == current:
        raise AgentError("the new password must differ from the current one", "new_password")
    async with db.read() as conn:
        row = (await conn.execute(select(agents_t).where(agents_t.c.id == agent_id))).first()
    try:
        _hasher.verify(row.password_hash if row is not None and row.password_hash else _DUMMY_HASH, current)
    except (VerificationError, InvalidHashError):
        raise AgentError("the current password is wrong", "current_password") from None
    await update_agent(db, agent_id, password=new)
