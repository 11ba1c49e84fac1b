"""`dangol nlu evaluate` on its own training data says so instead of reporting 1.0000 without a word."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from nlu.cli import nlu

TRAIN = """version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello
    - good morning
- intent: order_status
  examples: |
    - where is my order
    - has my order shipped
    - my package has not arrived
"""
NEW = """version: "3.1"
nlu:
- intent: greet
  examples: |
    - Hello
    - hey, good evening
- intent: order_status
  examples: |
    - when will my parcel come
"""


def test_evaluating_on_training_examples_warns_with_the_share(tmp_path: Path) -> None:
    train, new = tmp_path / "train.yml", tmp_path / "new.yml"
    train.write_text(TRAIN, encoding="utf-8")
    new.write_text(NEW, encoding="utf-8")
    assert CliRunner().invoke(nlu, ["train", str(train), "--out", str(tmp_path / "m")]).exit_code == 0
    same = CliRunner().invoke(nlu, ["evaluate", "--model", str(tmp_path / "m"), str(train)])
    assert same.exit_code == 0
    assert "warning: 6 of 6 test examples (100%) are in the model's training data" in same.stderr
    mixed = CliRunner().invoke(nlu, ["evaluate", "--model", str(tmp_path / "m"), str(new)])
    assert "warning: 1 of 3 test examples (33%)" in mixed.stderr  # "Hello" is "hello" with a capital
    fresh = new.with_name("fresh.yml")
    fresh.write_text(NEW.replace("    - Hello\n", ""), encoding="utf-8")
    clean = CliRunner().invoke(nlu, ["evaluate", "--model", str(tmp_path / "m"), str(fresh)])
    assert clean.exit_code == 0 and "warning" not in clean.stderr
