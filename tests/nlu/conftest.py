"""Fixtures of the nlu tests; `shared_dir` may move to tests/conftest.py later."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# tests/conftest.py puts tests/ on sys.path (pytest's prepend import mode), where
# this very folder looks like a namespace package `nlu` that shadows the real one
# (the editable install's finder comes after the path finder). Until the suite sets
# `pythonpath = ["."]` or importlib mode, make the repository root win.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
_shadow = sys.modules.get("nlu")
if _shadow is not None and getattr(_shadow, "__file__", None) is None:
    for _name in [m for m in sys.modules if m == "nlu" or m.startswith("nlu.")]:
        del sys.modules[_name]


def find_shared_dir() -> Path | None:
    """The shared folder (fixtures, data sets): env DANGOL_SHARED, else ../shared beside the repo."""
    configured = os.environ.get("DANGOL_SHARED")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Skip tests that need shared data when it is absent, except on CI where absence is a failure."""
    path = find_shared_dir()
    if path is None:
        reason = f"shared folder not found (set DANGOL_SHARED; tried {os.environ.get('DANGOL_SHARED') or REPO_ROOT.parent / 'shared'})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " and CI=true", pytrace=False)
        pytest.skip(reason)
    return path
