"""Customers and events come in from files, once, with every rejected row explained."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from dangol.cli import main
from crm_store.database import Database
from crm_store.insight_tables import CustomerKey
from crm_store.segments import create_rule_segment
from crm_store.models import Customer, CustomerEvent


def run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"DANGOL_DATABASE_URL": url}, catch_exceptions=False)
    return result.exit_code, result.output


def rows(url: str, table: type) -> list[dict]:
    async def read() -> list[dict]:
        db = Database(url)
        try:
            async with db.read() as conn:
                return [dict(r) for r in (await conn.execute(select(table.__table__))).mappings()]
        finally:
            await db.dispose()

    return asyncio.run(read())


EVENTS = """event_id,customer_id,type,occurred_at,amount,currency,items,page
e1,shop-1,purchase,2024-03-01T10:00:00+09:00,12000,KRW,"[{""sku"": ""A1"", ""name"": ""녹차"", ""quantity"": 2, ""price"": 6000}]",
e2,shop-1,page_view,2024-03-02T10:00:00Z,,,,/pricing
e3,shop-2,signup,2024-03-03,,,,
e4,shop-2,purchase,not a time,5,,,
e5,,purchase,2024-03-03T00:00:00Z,5,,,
e6,shop-3,purchase,2024-03-04T00:00:00Z,lots,,,
"""


def test_events_are_imported_once_with_their_items_and_the_rejected_rows_explained(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(EVENTS, encoding="utf-8")
    code, out = run(db_url, "import", "events", str(path))
    assert code == 0, out
    assert "3 events stored" in out and "2 new customers" in out
    assert "occurred_at must be an ISO 8601 time" in out and "(line 5)" in out
    assert "customer_id is empty (line 6)" in out and "amount must be a number (line 7)" in out
    stored = {e["external_id"]: e for e in rows(db_url, CustomerEvent)}
    assert set(stored) == {"e1", "e2", "e3"}
    assert stored["e1"]["items"] == [{"sku": "A1", "name": "녹차", "quantity": 2, "price": 6000}]
    assert stored["e2"]["properties"] == {"page": "/pricing"}
    stages = {k["external_id"]: k["customer_id"] for k in rows(db_url, CustomerKey)}
    by_id = {c["id"]: c["lifecycle_stage"] for c in rows(db_url, Customer)}
    assert by_id[stages["shop-1"]] == "customer" and by_id[stages["shop-2"]] == "prospect"
    code, out = run(db_url, "import", "events", str(path))
    assert code == 0 and "0 events stored, 3 already there, 0 new customers" in out
    assert len(rows(db_url, CustomerEvent)) == 3


def test_a_file_that_is_not_an_event_file_fails_with_a_message(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,colour\nkim,blue\n")
    code, out = run(sqlite_url, "import", "events", str(path))
    assert code != 0 and "customer_id" in out
    binary = tmp_path / "bad.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, out = run(sqlite_url, "import", "events", str(binary))
    assert code != 0 and "UTF-8" in out


def test_online_retail_invoices_become_purchases_and_returns_with_items(db_url: str, online_retail_head: Path) -> None:
    code, out = run(db_url, "import", "events", str(online_retail_head))
    assert code == 0, out
    assert "x no customer on this line" in out
    events = rows(db_url, CustomerEvent)
    first = next(e for e in events if e["external_id"] == "invoice-536365")
    assert first["type"] == "purchase" and len(first["items"]) == 7
    assert first["items"][0] == {"sku": "85123A", "name": "WHITE HANGING HEART T-LIGHT HOLDER", "quantity": 6, "price": 2.55}
    assert float(first["amount"]) == 139.12
    cancelled = [e for e in events if e["external_id"].startswith("invoice-C")]
    assert cancelled and all(e["type"] == "return" and float(e["amount"]) < 0 for e in cancelled)
    customers = rows(db_url, Customer)
    assert {c["attributes"].get("country") for c in customers} >= {"United Kingdom", "France"}
    code, out = run(db_url, "import", "events", str(online_retail_head))
    assert "0 events stored" in out and len(rows(db_url, CustomerEvent)) == len(events)


def test_online_retail_ii_columns_and_spreadsheet_exports_are_read_as_the_published_file(sqlite_url: str, tmp_path: Path) -> None:
    """UCI 502's header (Invoice, Price, Customer ID) in its own order, ids written as 13085.0, times with seconds;
    and a Windows-1252 export with a byte-order mark, US dates and "£" as one byte."""
    retail_ii = tmp_path / "online_retail_ii.csv"
    retail_ii.write_text("Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
                         "489434,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2009-12-01 07:45:00,6.95,13085.0,United Kingdom\n"
                         "489434,79323P,PINK CHERRY LIGHTS,12,2009-12-01 07:45:00,6.75,13085.0,United Kingdom\n"
                         "C489449,22087,PAPER BUNTING WHITE LACE,-12,2009-12-01 10:33:00,2.95,16321.0,Australia\n"
                         "489436,21755,LOVE BUILDING BLOCK WORD,2,2009-12-01 09:06:00,5.45,,United Kingdom\n", encoding="utf-8")
    export = tmp_path / "data.csv"
    export.write_bytes("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\r\n"
                       "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom\r\n"
                       "536366,22633,HAND WARMER UNION JACK £ SALE,6,12/1/2010 8:28,1.85,17850,United Kingdom\r\n"
                       .encode("cp1252").join([b"\xef\xbb\xbf", b""]))
    code, out = run(sqlite_url, "import", "events", str(retail_ii))
    assert code == 0 and "2 events stored" in out and "1 x no customer on this line" in out, out
    code, out = run(sqlite_url, "import", "events", str(export))
    assert code == 0 and "2 events stored" in out, out
    stored = {e["external_id"]: e for e in rows(sqlite_url, CustomerEvent)}
    first = stored["invoice-489434"]
    assert first["type"] == "purchase" and [i["sku"] for i in first["items"]] == ["85048", "79323P"] and float(first["amount"]) == 164.4
    assert stored["invoice-C489449"]["type"] == "return" and float(stored["invoice-C489449"]["amount"]) == -35.4
    assert stored["invoice-536366"]["items"][0]["name"] == "HAND WARMER UNION JACK £ SALE"
    assert stored["invoice-536365"]["occurred_at"].strftime("%Y-%m-%d %H:%M") == "2010-12-01 08:26"  # UK winter time is UTC
    keys = {k["external_id"] for k in rows(sqlite_url, CustomerKey)}
    assert {"13085", "16321", "17850"} <= keys and "13085.0" not in keys


def test_cdnow_text_is_imported_one_purchase_per_customer_and_day(sqlite_url: str, cdnow_sample: Path) -> None:
    code, out = run(sqlite_url, "import", "events", str(cdnow_sample))
    assert code == 0, out
    assert "2357 new customers" in out
    assert len(rows(sqlite_url, CustomerEvent)) == 6696  # 6,919 lines, several on one day joined


CUSTOMERS = """external_id,name,email,phone,timezone,tags,plan
c-1,김민수,Minsu@Example.com,+821012345678,Asia/Seoul,vip;beta,gold
c-2,Ann,ann@example.com,,Europe/London,,
c-3,Bad,not-an-email,,,,
c-4,Dup,minsu@example.com,,,,
"""


def test_customers_are_created_then_left_alone_by_the_same_file(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(CUSTOMERS, encoding="utf-8")
    code, out = run(db_url, "import", "customers", str(path))
    assert code == 0, out
    assert "2 customers created" in out
    assert "email: not a valid e-mail address" in out and "(line 4)" in out
    assert "email minsu@example.com belongs to another customer (line 5)" in out
    customers = {c["email"]: c for c in rows(db_url, Customer)}
    assert customers["minsu@example.com"]["name"] == "김민수" and customers["minsu@example.com"]["attributes"] == {"plan": "gold"}
    before = rows(db_url, Customer)
    code, out = run(db_url, "import", "customers", str(path))
    assert "0 customers created, 0 updated, 2 unchanged" in out
    assert rows(db_url, Customer) == before


def test_an_imported_phone_number_is_read_as_the_api_and_the_bot_read_it(sqlite_url: str, tmp_path: Path) -> None:
    """One normalization: a national number in the default region (KR unless set) is stored as E.164."""
    path = tmp_path / "customers.csv"
    path.write_text("external_id,phone\nk-1,010-2222-3333\nk-2,+1 415 555 2671\nk-3,12\n", encoding="utf-8")
    code, out = run(sqlite_url, "import", "customers", str(path))
    assert code == 0, out
    assert "phone: must be a valid international number" in out and "(line 4)" in out
    assert sorted(c["phone"] for c in rows(sqlite_url, Customer)) == ["+14155552671", "+821022223333"]


def import_and_score(url: str, folder: Path) -> None:
    """The customers and events files imported (c-1 buys), then everyone scored."""
    path = folder / "customers.csv"
    path.write_text(CUSTOMERS, encoding="utf-8")
    run(url, "import", "customers", str(path))
    events = folder / "events.csv"
    events.write_text(EVENTS.replace("shop-1", "c-1"), encoding="utf-8")
    run(url, "import", "events", str(events))
    run(url, "insights", "score", "--as-of", "2024-03-31")


def test_export_writes_profiles_with_their_scores(sqlite_url: str, tmp_path: Path) -> None:
    import_and_score(sqlite_url, tmp_path)
    out = tmp_path / "export.csv"
    code, text = run(sqlite_url, "export", "customers", str(out))
    assert code == 0, text
    exported = {r["external_id"]: r for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8")))}
    assert exported["c-1"]["name"] == "김민수" and exported["c-1"]["tags"] == "beta;vip"
    assert json.loads(exported["c-1"]["attributes"]) == {"plan": "gold"}
    assert exported["c-1"]["rfm_cell"] and exported["c-1"]["lead_score"]


def make_segment(url: str, rule: dict) -> str:
    async def create() -> str:
        db = Database(url)
        try:
            return (await create_rule_segment(db, "export", rule))["id"]
        finally:
            await db.dispose()

    return asyncio.run(create())


def test_export_of_a_segment_writes_only_its_members_with_their_scores(sqlite_url: str, tmp_path: Path) -> None:
    import_and_score(sqlite_url, tmp_path)
    segment = make_segment(sqlite_url, {"field": "scores.frequency", "op": "gte", "value": 1})
    out = tmp_path / "segment.csv"
    code, text = run(sqlite_url, "export", "customers", "--segment", segment, str(out))
    assert code == 0, text
    exported = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["external_id"] for r in exported] == ["c-1"] and exported[0]["rfm_cell"] and exported[0]["frequency"] == "1"
    assert "1 customers written" in text


def test_export_of_an_unknown_segment_fails_and_writes_no_file(sqlite_url: str, tmp_path: Path) -> None:
    out = tmp_path / "segment.csv"
    code, text = run(sqlite_url, "export", "customers", "--segment", "0192f5a0-0000-7000-8000-000000000000", str(out))
    assert code != 0 and "does not exist" in text and not out.exists()
    code, text = run(sqlite_url, "export", "customers", "--segment", "vip", str(out))
    assert code != 0 and "--segment" in text and not out.exists()
