"""What the request handlers of every part of the app reach through ``request.app[SERVICES]``.

The app (:mod:`bot.app`) fills it as the service starts; the API, the
console, health and metrics only read it, so none of them imports the app.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from bot.config import CoreSettings
from bot.delivery_leads import DeliveryLeads
from bot.engine.conversation import ConversationEngine
from bot.metrics import Metrics
from campaigns.scheduler import CampaignScheduler
from channels.base import Channel
from channels.delivery import DeliveryWorker
from crm_store.database import Database
from crm_store.live import LiveHub
from crm_store.outbox import Outbox


@dataclass
class Services:
    settings: CoreSettings
    metrics: Metrics
    channels: dict[str, Channel]
    db: Database | None = None
    engine: ConversationEngine | None = None
    outbox: Outbox | None = None
    delivery: DeliveryWorker | None = None
    #: Which channels this process's delivery worker sends for (one process per channel on a shared database).
    delivery_leads: DeliveryLeads | None = None
    #: Live events for the console (new messages, assignments, status changes).
    live: LiveHub | None = None
    #: Fires scheduled campaigns and materializes their runs (campaigns.scheduler).
    campaigns: CampaignScheduler | None = None
    started_at: float = field(default_factory=time.time)


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
