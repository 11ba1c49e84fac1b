"""Console logins: sessions behind a cookie (attempts are throttled in :mod:`crm_store.login_throttle`).

They live in the database so that every ``dangol serve`` process sharing it
agrees on who is logged in.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, insert, select

from crm_store.agents import AgentRecord, hash_token, record_of
from crm_store.columns import utcnow
from crm_store.database import Database
from crm_store.models import Agent, ConsoleSession

sessions_t = ConsoleSession.__table__
agents_t = Agent.__table__

SESSION_LIFETIME = dt.timedelta(hours=12)


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
