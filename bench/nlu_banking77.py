"""BANKING77 benchmark of the built-in NLU: accuracy, macro F1, training time, parse latency.

Settings were chosen by cross-validation on train.csv only (figures in the
docstring of nlu/classifier.py); test.csv is read once, here, for the figures.
"accuracy" is the accuracy as answered (an nlu_fallback answer counts as wrong),
the figure of issue 9; "top1_accuracy" ignores the threshold. Usage:
    .venv/bin/python bench/nlu_banking77.py [--shared DIR] [--out bench/results/nlu_banking77.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from nlu import evaluate, load_training_data, train

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.environ.get("DANGOL_SHARED", str(ROOT.parent / "shared")))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "nlu_banking77.json"))
    parser.add_argument("--with-rasa", action="store_true", help="not implemented here: Rasa takes ~23 min to train on this machine")
    args = parser.parse_args()
    folder = Path(args.shared) / "datasets" / "banking77"
    train_data = load_training_data(folder / "train.csv")
    test_data = load_training_data(folder / "test.csv")

    started = time.perf_counter()
    model = train(train_data)
    train_seconds = time.perf_counter() - started

    report = evaluate(model, test_data)
    texts = [e.text for e in test_data.examples]
    for text in texts[:200]:  # warm caches
        model.parse(text)
    latencies = []
    for text in texts:
        t0 = time.perf_counter()
        model.parse(text)
        latencies.append((time.perf_counter() - t0) * 1000)
    result = {
        "dataset": "BANKING77",
        "train_examples": len(train_data.examples),
        "test_examples": len(texts),
        "accuracy": round(report["accuracy"], 4),
        "top1_accuracy": round(report["top1_accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "fallback_rate": round(report["fallback_rate"], 4),
        "threshold": model.threshold,
        "threshold_source": model.metadata.get("threshold_source"),
        "threshold_choice": model.metadata.get("threshold_choice"),
        "validation": model.metadata.get("validation"),
        "train_seconds": round(train_seconds, 2),
        "parse_ms_p50": round(statistics.median(latencies), 3),
        "parse_ms_p99": round(float(np.percentile(latencies, 99)), 3),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "config": model.metadata.get("config"),
    }
    if args.with_rasa:
        result["rasa"] = "skipped: Rasa 3.6 trains ~23 min on this machine (see shared/peers/rasa/README.md)"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"cores {os.cpu_count()}")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
