"""The store's side of the message path: load a batch's context, write its plan, in one transaction.

The conversation engine (``bot.engine``) reads with :func:`load_context`,
decides on every message, fills a :class:`WritePlan` and writes it with
:func:`write_plan`, all inside one :func:`run_batch` unit, so a group of
concurrent messages costs one transaction.  The store knows nothing of bots,
decisions or channels here: only rows.
"""

from crm_store.message_batch.context import (
    BatchContext,
    ConversationRecord,
    CustomerRecord,
    EditTarget,
    Sender,
    StoredInbound,
    StoredReply,
    load_context,
)
from crm_store.message_batch.plan import CUSTOMER_FIELDS, WritePlan, write_plan
from crm_store.message_batch.runner import run_batch

__all__ = [
    "CUSTOMER_FIELDS", "BatchContext", "ConversationRecord", "CustomerRecord", "EditTarget", "Sender", "StoredInbound",
    "StoredReply", "WritePlan", "load_context", "run_batch", "write_plan",
]
