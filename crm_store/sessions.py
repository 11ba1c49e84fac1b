"""Console logins: sessions behind a cookie, and the failed-login counter that rate-limits them.

Both live in the database so that every ``dangol serve`` process sharing it
agrees on who is logged in and on how many attempts an address has left.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, or_, select

from crm_store.agents import AgentRecord, hash_token, record_of
from crm_store.columns import new_id, utcnow
from crm_store.database import Database
from crm_store.models import Agent, ConsoleSession, LoginFailure

sessions_t = ConsoleSession.__table__
failures_t = LoginFailure.__table__
agents_t = Agent.__table__

SESSION_LIFETIME = dt.timedelta(hours=12)
FAILURE_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_ADDRESS = 20


@dataclass(frozen=True, slots=True)
class Session:
    agent: AgentRecord
    csrf_token: str
    expires_at: dt.datetime


async def create_session(db: Database, agent_id: uuid.UUID) -> tuple[str, str]:
    """Return the cookie value and the CSRF token; only the cookie's hash is stored."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = utcnow()
    async with db.write() as conn:
        await conn.execute(delete(sessions_t).where(sessions_t.c.expires_at < now))
        await conn.execute(insert(sessions_t).values(token_hash=hash_token(token), agent_id=agent_id, csrf_token=csrf,
                                                     created_at=now, expires_at=now + SESSION_LIFETIME))
    return token, csrf


async def session_for(db: Database, token: str) -> Session | None:
    if not token or len(token) > 200:
        return None
    async with db.read() as conn:
        row = (await conn.execute(
            select(agents_t, sessions_t.c.csrf_token, sessions_t.c.expires_at)
            .join(sessions_t, sessions_t.c.agent_id == agents_t.c.id)
            .where(sessions_t.c.token_hash == hash_token(token))
        )).first()
    if row is None or not row.active or row.expires_at < utcnow():
        return None
    return Session(record_of(row), row.csrf_token, row.expires_at)


async def end_session(db: Database, token: str) -> None:
    async with db.write() as conn:
        await conn.execute(delete(sessions_t).where(sessions_t.c.token_hash == hash_token(token)))


async def login_blocked_for(db: Database, email: str, address: str) -> int:
    """Seconds until another attempt is allowed for this e-mail or address; 0 when it is allowed now."""
    since = utcnow() - FAILURE_WINDOW
    async with db.read() as conn:
        rows = (await conn.execute(
            select(failures_t.c.email, failures_t.c.address, failures_t.c.created_at)
            .where(failures_t.c.created_at >= since, or_(failures_t.c.email == email, failures_t.c.address == address))
            .order_by(failures_t.c.created_at)
        )).all()
    waits = []
    for key, limit in (("email", MAX_FAILURES_PER_EMAIL), ("address", MAX_FAILURES_PER_ADDRESS)):
        value = email if key == "email" else address
        times = [r.created_at for r in rows if getattr(r, key) == value]
        if len(times) >= limit:
            waits.append((times[-limit] + FAILURE_WINDOW - utcnow()).total_seconds())
    return max(1, int(max(waits)) + 1) if waits else 0


async def record_failure(db: Database, email: str, address: str) -> None:
    now = utcnow()
    async with db.write() as conn:
        await conn.execute(delete(failures_t).where(failures_t.c.created_at < now - FAILURE_WINDOW))
        await conn.execute(insert(failures_t).values(id=new_id(), email=email[:320], address=address[:64], created_at=now))


async def clear_failures(db: Database, email: str) -> None:
    async with db.write() as conn:
        await conn.execute(delete(failures_t).where(failures_t.c.email == email))


async def failure_count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(failures_t))).scalar_one())
