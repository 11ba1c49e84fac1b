"""Evaluation of a model on labelled data, the figures `nlu evaluate` prints.

Out-of-scope handling follows how a bot uses the answer: an example labelled
`oos` (or `nlu_fallback`) is right when the model answers either, because both
lead to the same "I did not understand" turn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from sklearn.metrics import precision_recall_fscore_support

from nlu.names import FALLBACK_INTENT, OOS_INTENT
from nlu.training_data import TrainingData

OUT_OF_SCOPE = (FALLBACK_INTENT, OOS_INTENT)


#: Texts parsed together (see nlu.features: a text's answer is the same in any batch).
BATCH = 64


class _Parses(Protocol):
    def parse_many(self, texts: Sequence[str]) -> list[dict[str, Any]]: ...


def _same_meaning(gold: str, predicted: str) -> str:
    """The prediction as scored: `nlu_fallback` counts as `oos` for an out-of-scope example."""
    if gold in OUT_OF_SCOPE and predicted in OUT_OF_SCOPE:
        return gold
    return predicted


def evaluate(model: _Parses, data: TrainingData, confused_pairs: int = 10) -> dict[str, Any]:
    """Accuracy, macro F1, per-intent scores, most confused pairs, and out-of-scope figures when labelled."""
    examples = data.examples
    if not examples:
        raise ValueError("no examples to evaluate")
    gold: list[str] = []
    predicted: list[str] = []
    top1_right = 0
    answers = [answer for start in range(0, len(examples), BATCH)
               for answer in model.parse_many([ex.text for ex in examples[start:start + BATCH]])]
    for ex, answer in zip(examples, answers, strict=True):
        name = answer["intent"]["name"] or FALLBACK_INTENT
        gold.append(ex.intent)
        predicted.append(_same_meaning(ex.intent, name))
        best = next((r["name"] for r in answer.get("intent_ranking", []) if r["name"] != FALLBACK_INTENT), name)
        top1_right += best == ex.intent or (ex.intent in OUT_OF_SCOPE and best in OUT_OF_SCOPE)
    labels = sorted(set(gold))
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, zero_division=0
    )
    n = len(gold)
    right = sum(g == p for g, p in zip(gold, predicted))
    confusions = Counter((g, p) for g, p in zip(gold, predicted) if g != p)
    report: dict[str, Any] = {
        "examples": n,
        "intents": len(labels),
        "accuracy": right / n,
        "top1_accuracy": top1_right / n,
        "fallback_rate": sum(p == FALLBACK_INTENT for p in predicted) / n,
        "macro_f1": float(f1.mean()),
        "per_intent": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "confused_pairs": [
            {"intent": g, "predicted": p, "count": c} for (g, p), c in confusions.most_common(confused_pairs)
        ],
    }
    oos = [i for i, g in enumerate(gold) if g in OUT_OF_SCOPE]
    if oos:
        in_scope = [i for i, g in enumerate(gold) if g not in OUT_OF_SCOPE]
        report["oos_recall"] = sum(predicted[i] == gold[i] for i in oos) / len(oos)
        report["in_scope_accuracy"] = (
            sum(predicted[i] == gold[i] for i in in_scope) / len(in_scope) if in_scope else None
        )
        report["oos_examples"] = len(oos)
    return report
