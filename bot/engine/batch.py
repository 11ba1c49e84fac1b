"""One batch of inbound messages, decided and stored: the unit of work the store runs in one transaction.

:meth:`BatchHandler.handle` runs :meth:`BatchHandler.unit` through the
store's :func:`~crm_store.message_batch.run_batch` (one transaction, retried
on conflicts), then joins customers whose platform vouched for a contact.
The unit loads the batch's context from the store, answers
duplicates with what they got the first time, applies edits, finds or makes
each sender's customer and conversation, asks the bot for a decision on each
message in arrival order (this is where the bot decides: :meth:`_decide`;
opt-out words are caught before it, whoever holds the conversation),
and hands the store one :class:`~crm_store.message_batch.WritePlan` with the
messages, the replies and their outbox rows, the customer and conversation
changes and the handoffs.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from bot.engine.opt_out import OptOutCatcher
from bot.engine.turn import HUMAN_STATES, Decider, Decision, InboundItem, Reply, Turn
from bot.engine.waiting import acknowledged, waiting_for
from contracts.messages import HandleResult, InboundMessage, OutboundMessage
from crm_store.columns import new_id, utcnow
from crm_store.customers import join_verified_contact
from crm_store.database import Database
from crm_store.message_batch import (
    CUSTOMER_FIELDS,
    BatchContext,
    ConversationRecord,
    CustomerRecord,
    Sender,
    StoredInbound,
    WritePlan,
    load_context,
    run_batch,
    write_plan,
)

log = logging.getLogger(__name__)

#: last_seen_at is written at most this often per customer: a minute is
#: precise enough for "last seen" and saves a write on most messages.
LAST_SEEN_RESOLUTION = dt.timedelta(seconds=60)
#: A contact a platform vouched for, to join to the customer once the batch is committed.
ContactJoin = tuple[uuid.UUID, str | None, str | None]
Results = list[HandleResult | BaseException]


class BatchHandler:
    """Decides and stores batches with ``decide``; replies on ``inline_channels`` leave in the HTTP answer, not the outbox.

    ``opt_out``: the bot folder's opt-out words (:meth:`OptOutCatcher.for_bot`), caught before the rules
    whoever holds the conversation; the built-in words when not given.
    ``own_thread`` (SQLite): see :func:`crm_store.message_batch.run_batch`; true in the write child.
    """

    def __init__(self, db: Database, decide: Decider, inline_channels: frozenset[str], *,
                 opt_out: OptOutCatcher | None = None, own_thread: bool = False) -> None:
        self.db = db
        self.decide = decide
        self.opt_out = opt_out or OptOutCatcher()
        self.inline_channels = inline_channels
        self.own_thread = own_thread

    async def handle(self, items: Sequence[InboundItem]) -> Results:
        results, joins = await run_batch(self.db, items, self.unit, own_thread=self.own_thread)
        if joins:
            await self._join_contacts(joins, results)
        return results

    async def _join_contacts(self, joins: list[ContactJoin], results: Results) -> None:
        """Rare: a platform vouched for a contact the customer record lacks; join or fill (after the commit)."""
        for customer_id, email, phone in joins:
            survivor = await join_verified_contact(self.db, customer_id, email, phone)
            if survivor != customer_id:
                for result in results:
                    if isinstance(result, HandleResult) and result.customer_id == str(customer_id):
                        result.customer_id = str(survivor)

    def unit(self, conn: Connection, items: Sequence[InboundItem], look_for_duplicates: bool) -> tuple[Results, list[ContactJoin]]:
        """Load, decide and write ``items`` on ``conn`` (see :func:`crm_store.message_batch.run_batch`)."""
        msgs = [item.message for item in items]
        ctx = load_context(
            conn, [_sender(m) for m in msgs],
            inbound_ids=[(m.channel, m.external_id) for m in msgs if m.external_id] if look_for_duplicates else (),
            edits=[(m.channel, m.edit_of) for m in msgs if m.kind == "edit" and m.edit_of],
        )
        plan = WritePlan(now=utcnow())
        joins: list[ContactJoin] = []
        results = self._plan(items, ctx, plan, joins)
        write_plan(conn, plan)
        return results, joins

    def _plan(self, items: Sequence[InboundItem], ctx: BatchContext, plan: WritePlan, joins: list[ContactJoin]) -> Results:
        results: list[HandleResult | int | None] = [None] * len(items)
        first_of: dict[tuple[str, str], int] = {}
        for index, item in enumerate(items):
            msg = item.message
            key = (msg.channel, msg.external_id) if msg.external_id else None
            if key and key in ctx.duplicates:
                results[index] = _answered(ctx.duplicates[key])
            elif key and key in first_of:
                results[index] = first_of[key]  # resolved below
            else:
                if key:
                    first_of[key] = index
                if msg.kind == "edit" and msg.edit_of and (target := ctx.edit_targets.get((msg.channel, msg.edit_of))):
                    plan.add_edit(target.id, msg.text, target.text, target.meta)
                    results[index] = HandleResult(False, str(target.id), str(target.conversation_id), str(target.customer_id))
                else:
                    customer, conv = self._whose(msg, ctx, plan)
                    results[index] = self._apply(item, customer, conv, plan, joins)
        final: Results = []
        for result in results:
            if isinstance(result, int):
                first = results[result]
                assert isinstance(first, HandleResult)
                final.append(HandleResult(True, first.message_id, first.conversation_id, first.customer_id, list(first.replies)))
            else:
                assert result is not None
                final.append(result)
        return final

    @staticmethod
    def _whose(msg: InboundMessage, ctx: BatchContext, plan: WritePlan) -> tuple[CustomerRecord, ConversationRecord]:
        """The sender's customer (made on first contact) and its unresolved conversation on the channel (opened if none)."""
        key = (msg.channel, msg.sender_id)
        customer_id = ctx.identities.get(key)
        if customer_id is None:
            customer_id = ctx.by_contact.get(key)
            if customer_id is None:
                customer = _new_customer(msg, plan)
                ctx.customers[customer.id] = customer
                customer_id = customer.id
            plan.add_identity(customer_id, msg.channel, msg.sender_id, _profile_dict(msg))
            ctx.identities[key] = customer_id
        elif key in ctx.unreachable:
            ctx.unreachable.discard(key)  # writing to us again means the block was lifted
            plan.reachable_again.append(key)
        customer = ctx.customers[customer_id]
        conv = ctx.open_conversations.get((customer_id, msg.channel))
        if conv is None:
            conv = ConversationRecord(id=new_id(), customer_id=customer_id, channel=msg.channel,
                                      thread=msg.thread or msg.sender_id, is_new=True)
            ctx.open_conversations[(customer_id, msg.channel)] = conv
        return customer, conv

    def _apply(self, item: InboundItem, customer: CustomerRecord, conv: ConversationRecord, plan: WritePlan,
               joins: list[ContactJoin]) -> HandleResult:
        msg = item.message
        now = plan.now
        message_id = new_id()
        intent = None
        if item.parse and isinstance(item.parse.get("intent"), dict):
            intent = item.parse["intent"].get("name")
        meta: dict[str, Any] = dict(msg.metadata)
        if msg.payload:
            meta["payload"] = msg.payload
        if msg.thread:
            meta["thread"] = msg.thread
        if msg.sent_at:
            meta["sent_at"] = msg.sent_at.isoformat()
        if item.parse:
            meta["nlu"] = {"intent": item.parse.get("intent"), "entities": item.parse.get("entities", [])}
        plan.add_message(message_id, conv, direction="in", sender_kind="customer", text=msg.text,
                         attachments=[a.to_dict() for a in msg.attachments], external_id=msg.external_id, intent=intent,
                         metadata=meta)
        conv.thread = msg.thread or msg.sender_id
        plan.conversations[conv.id] = conv
        profile = msg.profile
        if profile.verified and not customer.is_new and (
            (profile.email and profile.email.lower() != customer.email) or (profile.phone and profile.phone != customer.phone)
        ):
            joins.append((customer.id, profile.email, profile.phone))
        start_param = msg.metadata.get("start_param")
        if start_param and not customer.is_new and customer.attributes.get("last_start_param") != start_param:
            # a campaign or referral link the customer came back through
            customer.attributes["last_start_param"] = start_param
            customer.attributes.setdefault("start_param", start_param)
            plan.update_customer(customer.id, attributes=dict(customer.attributes))
        if customer.last_seen_at is None or now - customer.last_seen_at > LAST_SEEN_RESOLUTION:
            plan.update_customer(customer.id, last_seen_at=now)
            customer.last_seen_at = now
        if conv.status == "snoozed":
            conv.status = "open" if conv.assignee_id else "pending"

        result = HandleResult(False, str(message_id), str(conv.id), str(customer.id))
        if (opted := self.opt_out.catch(msg, item.parse, customer, conv)) is not None:
            # STOP / 수신거부 works at once, on every channel, also while a person holds the conversation
            confirmation = Reply(text=opted.confirmation, metadata={"response": opted.kind})
            self._apply_decision(Decision(replies=[confirmation], consents=list(opted.consents)), msg, message_id, customer,
                                 conv, plan, result)
            return result
        if conv.status in HUMAN_STATES:
            # a person holds it: no bot answers, but a customer still waiting is told so
            waiting = waiting_for(conv, now)
            if waiting is not None:
                decision = self._decide(Turn(msg, item.parse, customer, conv, waiting), message_id)
                if decision is not None and decision.replies:
                    acknowledged(conv, now)
                    self._apply_decision(Decision(replies=decision.replies), msg, message_id, customer, conv, plan, result)
            return result
        decision = self._decide(Turn(msg, item.parse, customer, conv), message_id)
        if decision is not None:
            self._apply_decision(decision, msg, message_id, customer, conv, plan, result)
        return result

    def _decide(self, turn: Turn, message_id: uuid.UUID) -> Decision | None:
        """Where the bot decides: its rules, on one turn, inside the batch's transaction."""
        try:
            return self.decide(turn)
        except Exception:  # noqa: BLE001 - a broken bot must not lose the message
            log.exception("bot failed on message %s; storing it unanswered", message_id)
            return None

    def _apply_decision(self, decision: Decision, msg: InboundMessage, message_id: uuid.UUID, customer: CustomerRecord,
                        conv: ConversationRecord, plan: WritePlan, result: HandleResult) -> None:
        recipient = conv.thread or msg.sender_id
        inline = msg.channel in self.inline_channels
        for reply in decision.replies:
            reply_id = new_id()
            buttons = [b.to_dict() for b in reply.buttons]
            attachments = [a.to_dict() for a in reply.attachments]
            out = OutboundMessage(
                channel=msg.channel, recipient=recipient, text=reply.text, buttons=list(reply.buttons),
                attachments=list(reply.attachments), metadata=dict(reply.metadata), message_id=str(reply_id),
                conversation_id=str(conv.id), customer_id=str(customer.id),
            )
            plan.add_message(reply_id, conv, direction="out", sender_kind="bot", text=reply.text, attachments=attachments,
                             buttons=buttons, in_reply_to=message_id, status="sent" if inline else "queued",
                             metadata={"recipient": recipient, **reply.metadata})
            if not inline:
                out.outbox_id = str(plan.add_outbox(reply_id, conv, recipient, reply.text, buttons, attachments, reply.metadata))
            result.replies.append(out)
        if decision.bot_state is not None:
            conv.bot_state = decision.bot_state
        if decision.handoff is not None:
            handoff = decision.handoff
            conv.status = "pending"
            conv.team = handoff.team
            conv.priority = handoff.priority
            plan.handoffs.append(conv.id)
            plan.add_message(new_id(), conv, direction="sys", sender_kind="system",
                             text=f"Handed off to {handoff.team} ({handoff.reason})", in_reply_to=message_id,
                             metadata={"event": "handoff", "team": handoff.team, "priority": handoff.priority,
                                       "reason": handoff.reason})
        updates = {k: v for k, v in decision.customer_updates.items() if k in CUSTOMER_FIELDS}
        for key, value in updates.items():
            setattr(customer, key, value)
        if decision.attributes:
            customer.attributes.update(decision.attributes)
            updates["attributes"] = dict(customer.attributes)
        if updates:
            updates["updated_at"] = plan.now
            plan.update_customer(customer.id, **updates)
        for channel, purpose, granted in decision.consents:
            plan.add_consent(customer.id, channel, purpose, granted)
        for tag in sorted(decision.add_tags - customer.tags):
            customer.tags.add(tag)
            plan.add_tag(customer.id, tag)


def _answered(found: StoredInbound) -> HandleResult:
    """A message stored before: the same ids, and the replies it got (the REST channel returns them again)."""
    replies = [OutboundMessage.from_payload(r.channel, r.recipient, r.payload, message_id=str(r.id),
                                            conversation_id=str(r.conversation_id), customer_id=str(r.customer_id))
               for r in found.replies]
    return HandleResult(True, str(found.id), str(found.conversation_id), str(found.customer_id), replies)


def _sender(msg: InboundMessage) -> Sender:
    profile = msg.profile
    if not profile.verified:
        return Sender(msg.channel, msg.sender_id)
    return Sender(msg.channel, msg.sender_id, profile.email or None, profile.phone or None)


def _new_customer(msg: InboundMessage, plan: WritePlan) -> CustomerRecord:
    profile = msg.profile
    names = [n for n in (profile.first_name, profile.last_name) if n]
    customer = CustomerRecord(
        id=new_id(),
        name=" ".join(names) or profile.username or None,
        first_name=profile.first_name,
        last_name=profile.last_name,
        email=profile.email.lower() if profile.email and profile.verified else None,
        phone=profile.phone if profile.phone and profile.verified else None,
        locale=profile.language,
        timezone=profile.timezone,
        attributes={k: v for k, v in {"username": profile.username, "start_param": msg.metadata.get("start_param")}.items() if v},
        is_new=True,
        last_seen_at=plan.now,
    )
    plan.add_customer(customer)
    return customer


def _profile_dict(msg: InboundMessage) -> dict[str, Any]:
    profile = msg.profile
    return {k: v for k, v in {
        "first_name": profile.first_name, "last_name": profile.last_name, "username": profile.username,
        "language": profile.language, "email": profile.email, "phone": profile.phone,
    }.items() if v}
