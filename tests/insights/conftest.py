"""Data for the insights tests: the shared CDNOW and Online Retail files, small cuts of them in tmp."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from tests.service.conftest import admin, client, store, token_for  # noqa: F401 - the API fixtures


@pytest.fixture(scope="session")
def cdnow_sample(shared_dir: Path) -> Path:
    return shared_dir / "datasets" / "cdnow" / "CDNOW_sample.txt"


@pytest.fixture(scope="session")
def online_retail(shared_dir: Path) -> Path:
    return shared_dir / "datasets" / "online_retail" / "online_retail.csv.gz"


@pytest.fixture(scope="session")
def online_retail_head(online_retail: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 5,000 lines of the real file, gzipped as published (cancellations and lines without customers included)."""
    path = tmp_path_factory.mktemp("retail") / "head.csv.gz"
    with gzip.open(online_retail, "rt", encoding="utf-8", newline="") as source, gzip.open(path, "wt", encoding="utf-8", newline="") as out:
        out.writelines(itertools.islice(source, 5001))
    return path


@pytest.fixture(scope="session")
def online_retail_tenth(online_retail: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every line of one customer in ten (CustomerID ending in 0) over the whole year, plus the lines
    without a customer of the first 5,000: the real distributions at a tenth of the size."""
    path = tmp_path_factory.mktemp("retail") / "tenth.csv.gz"
    with gzip.open(online_retail, "rt", encoding="utf-8", newline="") as source, gzip.open(path, "wt", encoding="utf-8", newline="") as out:
        out.write(source.readline())
        for number, line in enumerate(source):
            customer = line.rstrip("\n").rsplit(",", 2)[-2]
            if customer.endswith("0") or (not customer and number < 5000):
                out.write(line)
    return path
