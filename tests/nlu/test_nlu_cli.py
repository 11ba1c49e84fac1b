"""`dangol nlu train|evaluate|parse` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nlu.cli import nlu

DATA = """version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello
    - hey there
    - good morning
- intent: order_status
  examples: |
    - where is my order
    - track my order [A1B2C3](order_id)
    - my package has not arrived
    - has my order shipped
"""


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "nlu.yml"
    path.write_text(DATA, encoding="utf-8")
    return path


@pytest.fixture()
def model_dir(data_file: Path, tmp_path: Path) -> Path:
    result = CliRunner().invoke(nlu, ["train", str(data_file), "--out", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    return tmp_path / "model"


def test_train_reports_progress_and_a_summary(data_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(nlu, ["train", str(data_file), "--out", str(tmp_path / "m"), "--threshold", "0.4"])
    assert result.exit_code == 0, result.output
    assert "reading" in result.stderr and "fitting" in result.stderr
    assert "trained the fast pipeline on 8 examples, 2 intents" in result.stdout
    assert "threshold 0.400 (given)" in result.stdout


def test_parse_prints_rasa_json(model_dir: Path) -> None:
    result = CliRunner().invoke(nlu, ["parse", "--model", str(model_dir), "주문 #12345 where is my order"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["intent"]["name"] == "order_status"
    assert "주문" in result.stdout  # not \\u-escaped
    assert answer["entities"][0]["value"] == "12345"


def test_evaluate_json_is_one_object_with_accuracy_and_macro_f1(model_dir: Path, data_file: Path) -> None:
    result = CliRunner().invoke(nlu, ["evaluate", "--model", str(model_dir), str(data_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    assert set(report["per_intent"]) == {"greet", "order_status"}


def test_evaluate_table_shows_per_intent_rows(model_dir: Path, data_file: Path) -> None:
    result = CliRunner().invoke(nlu, ["evaluate", "--model", str(model_dir), str(data_file)])
    assert result.exit_code == 0
    assert "macro F1" in result.stdout and "order_status" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "missing.yml", "--out", "m"], "missing.yml: no such file or directory"),
        (["parse", "--model", "nowhere", "hi"], "nowhere: no such model directory"),
    ],
)
def test_bad_input_is_one_line_error_and_nonzero_exit(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(nlu, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, TypeError, AttributeError))


def test_bad_training_data_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text('version: "3.1"\nnlu:\n- intent: a\n  examples: |\n    - hi [x](ent\n', encoding="utf-8")
    result = CliRunner().invoke(nlu, ["train", str(bad), "--out", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert f"{bad}:5: unclosed entity annotation" in result.output


def test_a_folder_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(nlu, ["parse", "--model", str(tmp_path), "hi"])
    assert result.exit_code == 1
    assert "not a Dangol NLU model" in result.output


OOS_DATA = DATA + """- intent: oos
  examples: |
    - what's the weather tomorrow
    - tell me a joke
    - who won the game last night
"""


def test_evaluate_shows_the_stored_threshold_and_out_of_scope_figures(tmp_path: Path) -> None:
    data = tmp_path / "oos.yml"
    data.write_text(OOS_DATA, encoding="utf-8")
    trained = CliRunner().invoke(nlu, ["train", str(data), "--out", str(tmp_path / "m"), "--threshold", "0.35"])
    assert trained.exit_code == 0, trained.output
    result = CliRunner().invoke(nlu, ["evaluate", "--model", str(tmp_path / "m"), str(data)])
    assert result.exit_code == 0, result.output
    assert "threshold      0.3500   (given" in result.stdout
    for line in ("accuracy       ", "best intent    ", "in-scope accuracy    ", "out-of-scope recall  "):
        assert line in result.stdout
    report = json.loads(CliRunner().invoke(nlu, ["evaluate", "--model", str(tmp_path / "m"), str(data), "--json"]).stdout)
    assert report["threshold"] == 0.35 and report["pipeline"] == "fast"
    assert {"accuracy", "top1_accuracy", "in_scope_accuracy", "oos_recall"} <= set(report)


@pytest.mark.parametrize(
    "config, message",
    [
        ("pipeline: turbo\n", "pipeline must be one of fast, accurate, not 'turbo'"),
        ("pipeline:\n  - name: DIETClassifier\n", "pipeline lists Rasa components"),
        ("expected_oos_rate: 1.5\n", "expected_oos_rate must be between 0 and 1"),
        ("language: en\nthreshold: 0.3\n", "unknown setting(s) threshold"),
    ],
)
def test_bad_config_is_refused_naming_the_file(config: str, message: str, data_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(config, encoding="utf-8")
    result = CliRunner().invoke(nlu, ["train", str(data_file), "--out", str(tmp_path / "m"), "--config", str(path)])
    assert result.exit_code == 1
    assert str(path) in result.output and message in result.output
    assert not (tmp_path / "m").exists()
