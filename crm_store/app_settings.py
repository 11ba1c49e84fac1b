"""Values every process must agree on, kept in the database."""

from __future__ import annotations

import secrets

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from crm_store.database import Database
from crm_store.models import AppSetting

settings_t = AppSetting.__table__


async def get_or_create_secret(db: Database, key: str) -> str:
    """A random secret made once and shared by every process on this database."""
    async with db.read() as conn:
        value = (await conn.execute(select(settings_t.c.value).where(settings_t.c.key == key))).scalar()
    if value is not None:
        return str(value)
    try:
        async with db.write() as conn:
            await conn.execute(insert(settings_t).values(key=key, value=secrets.token_urlsafe(32)))
    except IntegrityError:
        pass  # another process made it first; read theirs
    async with db.read() as conn:
        return str((await conn.execute(select(settings_t.c.value).where(settings_t.c.key == key))).scalar_one())
