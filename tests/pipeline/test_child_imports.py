"""A pipeline child imports what its target needs, not the program that started it (``dangol.cli`` imports every
command's dependencies: the writer child took 4-5 s to start when spawn imported it again)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_child_does_not_import_the_main_module_again() -> None:
    done = subprocess.run([sys.executable, "-m", "tests.pipeline.main_probe"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"main_again": False, "probe": False}, done.stderr  # the target's module only, nothing of __main__'s
