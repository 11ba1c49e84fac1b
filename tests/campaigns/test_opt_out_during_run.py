"""A customer who writes 수신거부 while a broadcast goes out gets nothing after the confirmation."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from campaigns import service
from crm_store.database import Database
from contracts.messages import InboundMessage
from tests.campaigns.conftest import add_customers
from tests.campaigns.test_campaign_api import API, drain, make_campaign, make_segment, recording_worker
from tests.helpers import sample_engine


async def test_an_opt_out_written_mid_run_stops_the_rest_of_the_run(client: TestClient, store: Database,
                                                                    marketer: dict[str, str]) -> None:
    await add_customers(store, [{"name": f"c{i}", "channels": {"telegram": str(i)}, "consent": True} for i in range(40)])
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer))
    await client.post(f"{API}/campaigns/{campaign['id']}/send", headers=marketer)
    await service.tick(store)
    worker, channels = recording_worker(store, ("telegram",))
    worker.batch = 10
    await worker.run_once()  # the run is going out
    reached = {m.recipient for m in channels["telegram"].sent}
    waiting = next(str(i) for i in range(40) if str(i) not in reached)
    engine = await sample_engine(store)
    await engine.handle(InboundMessage(channel="telegram", sender_id=waiting, text="수신거부", external_id="optout-1"))
    await engine.close()
    await drain(worker)
    to_them = [m.text for m in channels["telegram"].sent if m.recipient == waiting]
    assert len(to_them) == 1 and "수신거부 처리되었습니다" in (to_them[0] or "")
    await service.tick(store)
    report = await (await client.get(f"{API}/campaigns/{campaign['id']}/report", headers=marketer)).json()
    assert (report["status"], report["sent"], report["skipped"]["opted_out"]) == ("done", 39, 1)
