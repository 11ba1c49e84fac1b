"""Item-to-item recommendations, measured honestly on a time split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from dangol.cli import main
from insights.recommend import ItemToItem, basket, evaluate, top_k


def test_items_bought_together_are_recommended_and_owned_items_never_are() -> None:
    pairs = [("a", "tea"), ("a", "cup"), ("b", "tea"), ("b", "cup"), ("c", "tea"), ("c", "pot"), ("d", "tea"),
             ("e", "mug"), ("f", "mug"), ("g", "mug")]
    data = basket(pairs)
    model = ItemToItem(data)
    row = np.array([data.customers.index("d")])
    scores = model.scores(row)
    picks = [data.items[j] for j in top_k(scores, 2)[0]]
    assert picks[0] == "cup" and "tea" not in picks
    assert np.isneginf(scores[0, data.items.index("tea")])


def test_the_evaluation_counts_only_items_new_to_each_customer() -> None:
    before = [(c, s) for c in "abcdef" for s in ("tea", "cup")] + [("x", "tea"), ("y", "tea")] + [(c, "mug") for c in "mnopqrst"]
    after = [("x", "cup"), ("x", "tea"), ("y", "cup"), ("new-customer", "tea")]
    result = evaluate(before, after, k=1).as_json()
    assert result["customers"] == 2
    assert result["model"] == {"hit_rate": 1.0, "recall": 1.0}
    assert result["popular"]["hit_rate"] == 0.0  # mug is the most popular item x and y do not own


def test_on_online_retail_the_recommender_clearly_beats_the_most_popular_items(online_retail: Path) -> None:
    result = CliRunner().invoke(main, ["insights", "recommend", "--transactions", str(online_retail), "--split", "2011-11-01",
                                       "--k", "10", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["customers"] > 1000
    assert report["model"]["hit_rate"] > 1.2 * report["popular"]["hit_rate"]
    assert report["model"]["recall"] > 1.5 * report["popular"]["recall"]
