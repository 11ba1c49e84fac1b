"""Fixtures of the nlu tests (``shared_dir`` comes from tests/conftest.py)."""

from __future__ import annotations
