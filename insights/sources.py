"""Reading purchase histories from the files analysts have: CDNOW's text format,
Online Retail's invoice lines (UCI 352 as published, and the same columns as
UCI 502 "Online Retail II" and spreadsheet exports name and write them), and
plain CSV.

Each reader yields ``(line_number, EventIn)`` for what it accepts and
``(line_number, reason)`` for what it rejects, so an import can report every
rejected row and why; :func:`transactions` turns the same into arrays for
fitting models straight from a file.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import math
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from crm_store.events import EventIn, check_items

#: Online Retail's InvoiceDate is UK local time (its SOURCE.md).
UK = ZoneInfo("Europe/London")
ONLINE_RETAIL_HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
#: Each invoice-line column and the names it goes by: UCI 352's header above, UCI 502's (Online Retail II:
#: Invoice, Price, Customer ID), in any order; compared without case, spaces or underscores.
RETAIL_COLUMNS = {"invoice": ("invoiceno", "invoice"), "sku": ("stockcode",), "name": ("description",),
                  "quantity": ("quantity",), "date": ("invoicedate",), "price": ("unitprice", "price"),
                  "customer": ("customerid",), "country": ("country",)}
#: InvoiceDate as UCI 352 publishes it, as pandas writes UCI 502's (seconds), and as US spreadsheets export it.
RETAIL_TIMES = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
EVENT_COLUMNS = {"event_id", "customer_id", "type", "occurred_at", "amount", "currency", "items"}
MAX_TYPE = 64
#: Online Retail stock codes that are not products (its SOURCE.md): postage, charges, fees, vouchers.
NOT_PRODUCTS = {"C2"}


def is_fee(sku: str) -> bool:
    """An Online Retail line that is not a product: a code without a digit (POST, DOT, M, BANK CHARGES ...), C2, gift_*."""
    return not any(ch.isdigit() for ch in sku) or sku in NOT_PRODUCTS or sku.lower().startswith("gift_")

Parsed = tuple[int, EventIn | str]


class SourceError(Exception):
    """The file as a whole cannot be read (unknown format, bad header, not text)."""


def _cp1252_instead(error: UnicodeError) -> tuple[str, int]:
    """Decoding error handler: bytes that are not UTF-8 read as Windows-1252 (Latin-1 for the five it leaves undefined)."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start:error.end]
    try:
        return bad.decode("cp1252"), error.end
    except UnicodeDecodeError:
        return bad.decode("latin-1"), error.end


codecs.register_error("dangol-cp1252", _cp1252_instead)


def open_text(path: str | Path) -> io.TextIOWrapper:
    """A text stream over the file, gunzipped when it is a gzip.

    UTF-8, a byte-order mark (Excel's "CSV UTF-8") dropped; bytes that are
    not UTF-8 are read as Windows-1252, because spreadsheet exports of
    Online Retail are written so ("£" as the one byte 0xA3).  Nothing
    undecodable reaches the store, and the common case decodes at C speed.
    """
    path = Path(path)
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
        raw = gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="dangol-cp1252", newline="")  # type: ignore[arg-type]


def _column_key(name: str) -> str:
    return name.strip().casefold().replace(" ", "").replace("_", "")


def retail_columns(header: list[str]) -> dict[str, int] | None:
    """Where each Online Retail column is in ``header`` (see RETAIL_COLUMNS), or None if it is not that header."""
    keys = [_column_key(h) for h in header]
    found = {column: next((i for i, k in enumerate(keys) if k in names), -1) for column, names in RETAIL_COLUMNS.items()}
    return found if len(header) == len(RETAIL_COLUMNS) and -1 not in found.values() else None


def detect(path: str | Path) -> str:
    """``cdnow``, ``online_retail`` or ``csv``, from the first line."""
    try:
        with open_text(path) as stream:
            first = stream.readline()
    except (OSError, EOFError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    if "\x00" in first:
        raise SourceError(f"{path} is not text (UTF-8 or Windows-1252)")
    fields = first.split()
    if fields and (fields[0].isdigit() or fields[:2] == ["customer_id", "date"]) and "," not in first:
        return "cdnow"
    if retail_columns(next(csv.reader([first]), [])) is not None:
        return "online_retail"
    if "," in first:
        return "csv"
    raise SourceError(f"{path}: not CDNOW text, Online Retail invoice lines nor a CSV with a header")


def _retail_time(text: str) -> dt.datetime:
    """An InvoiceDate in one of RETAIL_TIMES, UK local time."""
    for layout in RETAIL_TIMES:
        try:
            return dt.datetime.strptime(text.strip(), layout).replace(tzinfo=UK)
        except ValueError:
            continue
    raise ValueError(text)


def _day(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y%m%d").replace(tzinfo=dt.UTC)


def read_cdnow(path: str | Path) -> Iterator[Parsed]:
    """CDNOW master (customer, date, cds, dollars; a header) or sample (sample id first, five columns).

    Several purchases of one customer on one day are one transaction (as in
    the papers), and their key makes a re-import harmless.
    """
    days: dict[tuple[str, str], list[Any]] = {}
    with open_text(path) as stream:
        for number, line in enumerate(stream, 1):
            fields = line.split()
            if not fields or (number == 1 and not fields[0].isdigit()):
                continue
            if len(fields) not in (4, 5):
                yield number, f"expected 4 or 5 columns, found {len(fields)}"
                continue
            customer, date, cds, dollars = fields[-4:]
            try:
                when, quantity, amount = _day(date), int(cds), float(dollars)
            except ValueError:
                yield number, "date must be YYYYMMDD, quantity an integer and amount a number"
                continue
            entry = days.setdefault((customer.lstrip("0") or "0", date), [number, when, 0, 0.0])
            entry[2] += quantity
            entry[3] += amount
    for (customer, date), (number, when, quantity, amount) in days.items():
        yield number, EventIn(type="purchase", occurred_at=when, customer_key=customer, external_id=f"cdnow-{customer}-{date}",
                              amount=round(amount, 2), properties={"quantity": quantity})


def read_online_retail(path: str | Path) -> Iterator[Parsed]:
    """Invoice lines grouped into one purchase (or, for ``C`` invoices, one return) with its items."""
    invoices: dict[str, list[Any]] = {}
    times: dict[str, dt.datetime] = {}  # an invoice's lines share a time: parse each once
    fees: dict[str, bool] = {}
    with open_text(path) as stream:
        reader = csv.reader(stream)
        columns = retail_columns(next(reader, []))
        if columns is None:
            raise SourceError(f"{path}: the header is not Online Retail's ({', '.join(ONLINE_RETAIL_HEADER)})")
        pick = operator.itemgetter(*(columns[c] for c in ("invoice", "sku", "name", "quantity", "date", "price", "customer", "country")))
        width = len(RETAIL_COLUMNS)
        for number, row in enumerate(reader, 2):
            if len(row) != width:
                yield number, f"expected {width} columns, found {len(row)}"
                continue
            invoice, sku, name, quantity, date, price, customer, country = pick(row)
            if customer.endswith(".0"):  # Online Retail II's ids as a spreadsheet writes them: 13085.0
                customer = customer[:-2]
            customer = customer.strip()
            if not customer:
                yield number, "no customer on this line"
                continue
            try:
                qty, unit = int(quantity), float(price)
                when = times.get(date) or times.setdefault(date, _retail_time(date))
            except ValueError:
                yield number, "Quantity must be an integer, UnitPrice a number and InvoiceDate a date and time (YYYY-MM-DD HH:MM)"
                continue
            entry = invoices.get(invoice)
            if entry is None:
                entry = invoices[invoice] = [number, when, customer, country, [], 0.0]
            line = {"sku": sku, "name": name.strip(), "quantity": qty, "price": unit}
            fee = fees.get(sku)
            if fee is None:
                fee = fees[sku] = is_fee(sku)
            if fee:
                line["fee"] = True  # kept in the invoice's lines, left out of recommendations
            entry[4].append(line)
            entry[5] += qty * unit
    for invoice, (number, when, customer, country, items, amount) in invoices.items():
        kind = "return" if invoice.startswith("C") else "purchase"
        yield number, EventIn(type=kind, occurred_at=when, customer_key=customer, external_id=f"invoice-{invoice}",
                              amount=round(amount, 2), currency="GBP", items=items, properties={"invoice": invoice},
                              customer_attributes={"country": country})


def _parse_time(text: str, zone: dt.tzinfo) -> dt.datetime:
    text = text.strip()
    value = _day(text) if len(text) == 8 and text.isdigit() else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=zone)


def parse_event(row: dict[str, str], zone: dt.tzinfo = dt.UTC) -> EventIn:
    """One CSV row of the events format; ValueError names the column at fault."""
    customer = (row.get("customer_id") or row.get("customer") or "").strip()
    if not customer:
        raise ValueError("customer_id is empty")
    kind = (row.get("type") or "purchase").strip()
    if not kind or len(kind) > MAX_TYPE:
        raise ValueError(f"type must be 1-{MAX_TYPE} characters")
    try:
        when = _parse_time(row.get("occurred_at") or row.get("date") or "", zone)
    except ValueError:
        raise ValueError("occurred_at must be an ISO 8601 time or YYYYMMDD") from None
    amount = None
    if (row.get("amount") or "").strip():
        try:
            amount = float(row["amount"])
        except ValueError:
            raise ValueError("amount must be a number") from None
        if not math.isfinite(amount):
            raise ValueError("amount must be a finite number")
    items = None
    if (row.get("items") or "").strip():
        items = check_items(_json(row["items"], "items"))
    currency = (row.get("currency") or "").strip().upper() or None
    if currency is not None and (len(currency) != 3 or not currency.isalpha()):
        raise ValueError("currency must be a three-letter code such as KRW")
    properties = {k: v for k, v in row.items() if k not in EVENT_COLUMNS | {"customer", "date"} and k and v not in (None, "")}
    event_id = (row.get("event_id") or "").strip()
    if not event_id:  # the same row always gets the same id, so re-importing it changes nothing
        event_id = "row-" + hashlib.sha256(json.dumps([customer, kind, when.isoformat(), amount, items, properties],
                                                      sort_keys=True).encode()).hexdigest()[:32]
    return EventIn(type=kind, occurred_at=when, customer_key=customer, external_id=event_id[:255], amount=amount,
                   currency=currency, items=items, properties=properties)


def _json(text: str, column: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(f"{column} is not valid JSON") from None


def read_events_csv(path: str | Path, zone: dt.tzinfo = dt.UTC) -> Iterator[Parsed]:
    with open_text(path) as stream:
        reader = csv.DictReader(stream)
        header = reader.fieldnames or []
        if not ({"customer_id", "customer"} & set(header)) or not ({"occurred_at", "date"} & set(header)):
            raise SourceError("the CSV header needs customer_id (or customer) and occurred_at (or date) columns; found "
                              + ", ".join(header))
        for number, row in enumerate(reader, 2):
            if None in row:
                yield number, "more fields than the header has"
                continue
            try:
                yield number, parse_event(row, zone)
            except ValueError as exc:
                yield number, str(exc)


def read_any(path: str | Path, zone: dt.tzinfo = dt.UTC) -> Iterator[Parsed]:
    kind = detect(path)
    if kind == "cdnow":
        return read_cdnow(path)
    if kind == "online_retail":
        return read_online_retail(path)
    return read_events_csv(path, zone)


@dataclass(slots=True)
class Transactions:
    """Purchases as arrays: customer index, day (days since 1970-01-01, UTC date) and amount."""

    customers: list[str]
    customer: np.ndarray
    day: np.ndarray
    amount: np.ndarray
    #: per purchase: the SKUs bought (empty when the source has no items)
    items: list[list[str]]
    names: dict[str, str]


def transactions(path: str | Path) -> Transactions:
    """The purchases of a file (returns and rejected rows left out), for the models."""
    index: dict[str, int] = {}
    cust: list[int] = []
    days: list[int] = []
    amounts: list[float] = []
    items: list[list[str]] = []
    names: dict[str, str] = {}
    epoch = dt.date(1970, 1, 1)
    for _, event in read_any(path):
        if isinstance(event, str) or event.type != "purchase" or event.customer_key is None:
            continue
        cust.append(index.setdefault(event.customer_key, len(index)))
        local = event.occurred_at
        days.append((local.date() - epoch).days)
        amounts.append(float(event.amount or 0.0))
        skus = []
        for line in event.items or []:
            if line.get("fee"):
                continue
            skus.append(line["sku"])
            if line.get("name"):
                names.setdefault(line["sku"], line["name"])
        items.append(skus)
    if not cust:
        raise SourceError(f"{path} holds no purchases")
    return Transactions(list(index), np.asarray(cust), np.asarray(days), np.asarray(amounts, dtype=float), items, names)
