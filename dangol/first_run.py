"""What ``dangol serve``, ``db upgrade`` and ``agent create`` do to a database before it is used.

A fresh install should route its first handoff: the teams the bot hands
off to exist, with default SLA targets, and the first admin is in them
(:mod:`crm_store.first_run` keeps this to once per database).
"""

from __future__ import annotations

from bot.bot_folder import BotFolder
from crm_store.database import Database, SchemaNotCurrent
from crm_store.first_run import seed_routing


def handoff_teams(bot: BotFolder) -> list[str]:
    """Every team the bot folder can hand a conversation to, in the order first named."""
    policy = bot.policy
    names = [policy.default_team, policy.fallback_handoff.team, policy.vip_handoff.team]
    names += [target.team for target in policy.routing.values()]
    steps = [a for actions in bot.rules.values() for a in actions]
    steps += [a for actions in bot.form_rules.values() for a in actions]
    steps += [a for form in bot.forms.values() for a in form.on_submit]
    names += [a.team for a in steps if a.kind == "handoff" and a.team]
    return list(dict.fromkeys(names))


async def prepare_database(database_url: str, bot: BotFolder | None) -> list[str]:
    """Migrate SQLite (PostgreSQL is migrated by ``dangol db upgrade``) and seed a fresh database.

    Returns the teams created.  Raises what connecting raises: the caller
    turns an unreachable database into one line.
    """
    db = Database(database_url)
    try:
        if db.is_sqlite:
            await db.upgrade()
        else:
            try:
                await db.check_current()
            except SchemaNotCurrent:
                return []  # the service says so and waits for `dangol db upgrade`
        return await seed_routing(db, handoff_teams(bot)) if bot is not None else []
    finally:
        await db.dispose()
