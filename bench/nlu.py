"""NLU benchmark: each pipeline (and, with --rasa, Rasa 3.6) on BANKING77 and BANKING77-OOS, in one run.

For each data set and pipeline: test accuracy as answered (an nlu_fallback answer
is the answer: wrong for an in-scope example, right for an `oos` one), with the
best non-fallback intent, in-scope accuracy and out-of-scope recall; training
time (the accurate pipeline from an empty embedding cache, and again with the
cache warm); parse latency p50/p99 one message at a time and per message in
batches; resident memory of a process that loads the model and parses.

Ceilings measured in the same run: the accuracy of the same model with the
threshold that is best on the test file in hindsight (what a perfect
threshold choice would score; ours is chosen on training data only), and the
per-message cost in batches (what batching makes of the one-at-a-time cost).

--rasa starts Rasa 3.6 through ../shared/peers/rasa/serve.sh on the same
training file (it trains there unless it has a model for that file) and
measures the same figures through its HTTP `POST /model/parse`; "batch" for
Rasa is 16 requests in flight, as it has no batch endpoint.

Usage:
    .venv/bin/python bench/nlu.py [--rasa] [--datasets banking77,banking77-oos] [--pipelines fast,accurate]
                                  [--oos-draws 1,2,3]  # also other draws of held-out intents (see _oos_draw)
Results: bench/results/nlu.json (figures are medians of --runs latency passes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import random
import queue as queue_module
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path, and its name would hide the nlu package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
DATASETS = ("banking77", "banking77-oos")
BATCH = 16
#: Latency is timed on the first this many test texts (every pass), accuracy on all of them.
LATENCY_TEXTS = 1000


def _rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "top1_accuracy", "in_scope_accuracy", "oos_recall", "macro_f1", "fallback_rate")
    return {k: round(report[k], 4) for k in keys if report.get(k) is not None}


def _latencies(parse_one: Any, parse_batch: Any, texts: Sequence[str], runs: int) -> dict[str, float]:
    """Median over `runs` passes of p50/p99 one at a time, and of per-message cost in batches of BATCH."""
    single_p50, single_p99, batch_p50, batch_p99, single_cpu, batch_cpu = [], [], [], [], [], []
    for _ in range(runs):
        one = []
        cpu0 = time.process_time()
        for text in texts:
            t0 = time.perf_counter()
            parse_one(text)
            one.append((time.perf_counter() - t0) * 1000)
        single_cpu.append((time.process_time() - cpu0) * 1000 / len(texts))
        per_message = []
        cpu0 = time.process_time()
        for start in range(0, len(texts) - BATCH + 1, BATCH):
            t0 = time.perf_counter()
            parse_batch(list(texts[start:start + BATCH]))
            per_message.append((time.perf_counter() - t0) * 1000 / BATCH)
        batch_cpu.append((time.process_time() - cpu0) * 1000 / (len(per_message) * BATCH) if per_message else 0.0)
        single_p50.append(float(np.percentile(one, 50)))
        single_p99.append(float(np.percentile(one, 99)))
        batch_p50.append(float(np.percentile(per_message, 50)))
        batch_p99.append(float(np.percentile(per_message, 99)))
    return {"parse_ms_p50": round(statistics.median(single_p50), 3), "parse_ms_p99": round(statistics.median(single_p99), 3),
            f"batch{BATCH}_ms_per_message_p50": round(statistics.median(batch_p50), 3),
            f"batch{BATCH}_ms_per_message_p99": round(statistics.median(batch_p99), 3),
            # CPU time of this process per message (time.process_time): less affected by other load than the wall
            # clock; for Rasa it is the client's only, so it is left out there
            "parse_cpu_ms_mean": round(statistics.median(single_cpu), 3),
            f"batch{BATCH}_cpu_ms_per_message_mean": round(statistics.median(batch_cpu), 3)}


def _best_threshold_ceiling(model: Any, test: Any) -> float:
    """Accuracy as answered of this model with the threshold that is best on the test file (hindsight)."""
    from nlu.names import OOS_INTENT
    from nlu.thresholds import oos_curves

    classes = model.intents
    examples = [e for e in test.examples if e.intent in classes]
    ranked = model.parse_many([e.text for e in examples])
    proba = np.zeros((len(examples), len(classes)))
    for i, answer in enumerate(ranked):
        for r in answer["intent_ranking"]:
            if r["name"] in classes:
                proba[i, classes.index(r["name"])] = r["confidence"]
    gold = np.array([classes.index(e.intent) for e in examples])
    if OOS_INTENT not in classes:
        return float(((proba.argmax(1) == gold)).mean())
    o = classes.index(OOS_INTENT)
    _, in_acc, oos_rec = oos_curves(proba, gold, o)
    share = float((gold == o).mean())
    return float(((1 - share) * in_acc + share * oos_rec).max())


def _train_child(dataset_dir: str, pipeline: str, model_dir: str, cache_dir: str, queue: Any) -> None:
    """Trains in its own process, so its peak memory is its own."""
    from nlu import NluSettings, load_training_data, train

    data = load_training_data(Path(dataset_dir) / "train.csv")
    t0, cpu0 = time.perf_counter(), time.process_time()
    model = train(data, settings=NluSettings(pipeline=pipeline), embedding_cache=cache_dir)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    model.save(model_dir)
    # CPU seconds of the process (all its threads: the two SVM fits run side by side, so this can exceed the wall time)
    queue.put({"train_seconds": round(seconds, 2), "train_cpu_seconds": round(cpu, 1), "train_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               "threshold": round(model.threshold, 4), "threshold_source": model.metadata.get("threshold_source"),
               "embedding": model.metadata.get("embedding"), "calibration": model.metadata.get("validation"),
               "threshold_choice": model.metadata.get("threshold_choice"), "config": model.metadata.get("config")})


def _serve_child(dataset_dir: str, model_dir: str, runs: int, queue: Any) -> None:
    """Loads the saved model as the service does, evaluates it and times parses."""
    from nlu import evaluate, load_model, load_training_data

    t0 = time.perf_counter()
    model = load_model(model_dir)
    load_seconds = time.perf_counter() - t0
    test = load_training_data(Path(dataset_dir) / "test.csv")
    report = evaluate(model, test)
    texts = [e.text for e in test.examples]
    model.parse_many(texts[:200])  # warm caches
    figures = {**_summary(report), "test_examples": len(texts), "load_seconds": round(load_seconds, 2),
               "best_threshold_ceiling_accuracy": round(_best_threshold_ceiling(model, test), 4)}
    figures.update(_latencies(model.parse, model.parse_many, texts[:LATENCY_TEXTS], runs))
    figures["serving_rss_mb"] = round(_rss_mb(), 1)
    queue.put(figures)


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"{target.__name__} failed (exit code {proc.exitcode}); its traceback is above")
    proc.join()
    return result


def bench_dangol(dataset_dir: Path, pipeline: str, runs: int, retrain: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dangol-nlu-bench-") as tmp:
        cache = str(Path(tmp) / "embeddings")  # empty: training time includes embedding every text
        result = _in_child(_train_child, str(dataset_dir), pipeline, str(Path(tmp) / "model"), cache)
        if pipeline == "accurate" and retrain:  # the same training with the cache now warm: what a retrain costs
            again = _in_child(_train_child, str(dataset_dir), pipeline, str(Path(tmp) / "model2"), cache)
            result["retrain_seconds_warm_cache"] = again["train_seconds"]
            result["retrain_embedded"] = (again.get("embedding") or {}).get("embedded")
        result.update(_in_child(_serve_child, str(dataset_dir), str(Path(tmp) / "model"), runs))
        result["latency_texts"] = LATENCY_TEXTS
    return result


class _RasaParser:
    """Rasa's /model/parse behind the `parse_many` that nlu.evaluate expects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool = ThreadPoolExecutor(max_workers=BATCH)

    def parse(self, text: str) -> dict[str, Any]:
        request = urllib.request.Request(self.url, data=json.dumps({"text": text}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def parse_many(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        return list(self.pool.map(self.parse, texts))


def bench_rasa(dataset_dir: Path, shared: Path, port: int, runs: int) -> dict[str, Any]:
    from nlu import evaluate, load_training_data

    train_file = dataset_dir / "train.csv"
    while _rasa_training(train_file):  # serve.sh caches the model by file: wait rather than train it twice at once
        time.sleep(20)
    log = Path(tempfile.mkstemp(prefix="rasa-peer-", suffix=".log")[1])
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", str(shared / "peers" / "rasa" / "serve.sh"), str(train_file), str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        trained = False
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Rasa exited with {proc.returncode}; see {log}")
            trained = trained or b"Starting to train component" in log.read_bytes()
            try:
                with urllib.request.urlopen(base + "/", timeout=2):
                    break
            except OSError:
                time.sleep(5)
        ready_seconds = time.perf_counter() - started
        parser = _RasaParser(base + "/model/parse")
        test = load_training_data(dataset_dir / "test.csv")
        report = evaluate(parser, test)
        texts = [e.text for e in test.examples]
        parser.parse_many(texts[:100])
        result: dict[str, Any] = {**_summary(report), "test_examples": len(texts)}
        result["train_seconds" if trained else "start_seconds_cached_model"] = round(ready_seconds, 1)
        result.update(_latencies(parser.parse, parser.parse_many, texts[:LATENCY_TEXTS], runs))
        result.pop("parse_cpu_ms_mean"), result.pop(f"batch{BATCH}_cpu_ms_per_message_mean")  # the client's, not Rasa's
        result["serving_rss_mb"] = round(sum(_rss_mb(p) for p in _group_pids(proc.pid)), 1)
        result["version"] = "rasa 3.6.21 (../shared/peers/rasa, DIET 10 epochs, FallbackClassifier 0.3)"
        return result
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def _rasa_training(train_file: Path) -> bool:
    """Whether a `rasa train` is running in serve.sh's work folder for this training file (named as serve.sh names it)."""
    digest = hashlib.sha1(train_file.read_bytes()).hexdigest()[:8]
    home = Path(os.environ.get("RASA_HOME", Path.home() / ".cache" / "dangol-rasa-peer"))
    work = home / f"{train_file.stem}-{digest}-e{os.environ.get('EPOCHS', '10')}"
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and b"rasa\x00train" in (entry / "cmdline").read_bytes()
                    and Path(os.readlink(entry / "cwd")) == work):
                return True
        except OSError:
            continue
    return False


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.environ.get("DANGOL_SHARED", str(ROOT.parent / "shared")))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--pipelines", default="fast,accurate")
    parser.add_argument("--rasa", action="store_true", help="also start Rasa 3.6 (serve.sh) and measure it over HTTP")
    parser.add_argument("--rasa-port", type=int, default=5305)
    parser.add_argument("--runs", type=int, default=3, help="latency passes over the test texts (medians reported)")
    parser.add_argument("--retrain", action="store_true", help="accurate: train again with the embedding cache warm")
    parser.add_argument("--oos-draws", default="", metavar="SEEDS",
                        help="also other BANKING77-OOS-like sets: 27 held-out intents drawn with random.Random(seed), e.g. 1,2,3")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "nlu.json"))
    args = parser.parse_args()
    shared = Path(args.shared)
    drawn = tempfile.TemporaryDirectory(prefix="dangol-nlu-draws-")
    folders = {name: shared / "datasets" / name for name in filter(None, args.datasets.split(","))}
    for seed in (int(s) for s in filter(None, args.oos_draws.split(","))):
        folders[f"banking77-oos-draw{seed}"] = _oos_draw(shared / "datasets" / "banking77", Path(drawn.name), seed)
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                               "load_average_at_start": os.getloadavg(),
                               "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "datasets": {}}
    print(f"cores {os.cpu_count()}", flush=True)
    for name, folder in folders.items():
        per: dict[str, Any] = {}
        for pipeline in filter(None, args.pipelines.split(",")):
            print(f"{name}: training and measuring {pipeline} ...", flush=True)
            per[pipeline] = bench_dangol(folder, pipeline, args.runs, args.retrain)
            print(f"{name} {pipeline}: {json.dumps(_brief(per[pipeline]))}", flush=True)
        if args.rasa:
            print(f"{name}: starting Rasa 3.6 through serve.sh ...", flush=True)
            per["rasa"] = bench_rasa(folder, shared, args.rasa_port, args.runs)
            print(f"{name} rasa: {json.dumps(_brief(per['rasa']))}", flush=True)
            for pipeline in (p for p in per if p != "rasa"):
                per[pipeline]["vs_rasa"] = {k: round(per[pipeline][k] / per["rasa"][k], 3)
                                            for k in ("accuracy", "parse_ms_p50") if per["rasa"].get(k)}
        results["datasets"][name] = per
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results["load_average_at_end"] = os.getloadavg()
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out}")


def _oos_draw(banking77: Path, into: Path, seed: int) -> Path:
    """A set built as ../shared/datasets/banking77-oos/SOURCE.md says, with its own seed (77 draws that set's intents):
    27 of the 77 intents (random.Random(seed) from the sorted list) become `oos`, 100 of their training rows kept.

    It checks that what was chosen on BANKING77-OOS's training file carries over to other held-out intents.
    """
    import csv

    rows = {part: list(csv.DictReader((banking77 / f"{part}.csv").open(encoding="utf-8"))) for part in ("train", "test")}
    rng = random.Random(seed)
    held = set(rng.sample(sorted({r["intent"] for r in rows["train"]}), 27))
    train = [r for r in rows["train"] if r["intent"] not in held]
    train += [{"text": r["text"], "intent": "oos"} for r in rng.sample([r for r in rows["train"] if r["intent"] in held], 100)]
    test = [{"text": r["text"], "intent": "oos" if r["intent"] in held else r["intent"]} for r in rows["test"]]
    folder = into / f"banking77-oos-draw{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    for part, data in (("train", train), ("test", test)):
        with (folder / f"{part}.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, ["text", "intent"])
            writer.writeheader()
            writer.writerows(data)
    return folder


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "top1_accuracy", "in_scope_accuracy", "oos_recall", "best_threshold_ceiling_accuracy",
            "train_seconds", "train_cpu_seconds", "retrain_seconds_warm_cache", "parse_ms_p50", "parse_ms_p99", "parse_cpu_ms_mean",
            f"batch{BATCH}_ms_per_message_p50", "serving_rss_mb", "threshold")
    return {k: r[k] for k in keys if k in r}


if __name__ == "__main__":
    main()
