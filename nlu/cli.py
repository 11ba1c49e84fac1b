"""`dangol nlu ...`: train, evaluate and try a model from the shell.

Every user error becomes a one-line `click.ClickException` (exit 1) naming
the file and line, because a traceback hides the one line the user must fix.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import click

from nlu.data_files import load_training_data
from nlu.embedding import EmbedExtraMissing, load_encoder
from nlu.evaluation import evaluate as evaluate_model
from nlu.model import Model, ModelError, load_model
from nlu.settings import PIPELINES, NluSettings, SettingsError, read_settings
from nlu.training import train as train_model
from nlu.training_data import TrainingData, TrainingDataError


def _progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


def _read_data(paths: tuple[str, ...]) -> TrainingData:
    if not paths:
        raise click.UsageError("give at least one training data file or folder")
    _progress(f"reading {len(paths)} path(s)")
    try:
        data = load_training_data(list(paths))
    except TrainingDataError as exc:
        raise click.ClickException(str(exc)) from None
    if not data.examples_as_written:
        raise click.ClickException(f"no intent examples found in: {', '.join(paths)}")
    _progress(
        f"read {len(data.examples_as_written)} examples ({len(data.examples)} unique), "
        f"{len(data.intents)} intents, {len(data.synonyms)} synonyms, {len(data.regexes)} regexes, {len(data.lookups)} lookups"
    )
    return data


def _load(path: str) -> Model:
    try:
        return load_model(path)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(name="nlu")
def nlu() -> None:
    """Train, evaluate and try the built-in NLU model (Rasa-format data)."""


def _settings(config_path: str | None, pipeline: str | None) -> NluSettings:
    try:
        settings = read_settings(config_path) if config_path else NluSettings()
        if pipeline:
            settings = replace(settings, pipeline=pipeline)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


@nlu.command()
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(), help="Directory to write the model to.")
@click.option("--pipeline", type=click.Choice(PIPELINES), default=None,
              help="fast (sparse n-grams, the default) or accurate (adds a sentence embedding; needs "
                   "pip install 'dangol[embed]'); overrides the pipeline of --config.")
@click.option("--config", "config_path", type=click.Path(exists=True), default=None,
              help="A bot's config.yml (or its folder): language, pipeline, expected_oos_rate, target_oos_recall.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="nlu_fallback threshold; default: chosen on out-of-fold confidences of the training data "
                   "(with an 'oos' intent: best expected accuracy at config.yml's expected_oos_rate, default 0.2; "
                   "without: a confidence floor that sends at most 0.05% of right answers to nlu_fallback, at most 0.3).")
def train(data: tuple[str, ...], out: str, pipeline: str | None, config_path: str | None, threshold: float | None) -> None:
    """Train a model on DATA (Rasa YAML/Markdown/JSON or text,intent CSV; files or folders)."""
    started = time.perf_counter()
    settings = _settings(config_path, pipeline)
    if settings.embeds:
        try:  # before reading the data: a missing extra is the first thing to say
            load_encoder()
        except EmbedExtraMissing as exc:
            raise click.ClickException(str(exc)) from None
    training_data = _read_data(data)
    try:
        model = train_model(training_data, threshold=threshold, settings=settings, progress=_progress)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    model.metadata["training_texts"] = fingerprints(e.text for e in training_data.examples)
    try:
        model.save(out)
    except (OSError, ModelError) as exc:
        raise click.ClickException(f"cannot write model to {out}: {exc}") from None
    info = model.metadata
    click.echo(
        f"trained the {model.pipeline} pipeline on {info['examples']} examples, {info['intents']} intents in "
        f"{time.perf_counter() - started:.1f} s; threshold {model.threshold:.3f} ({info['threshold_source']}); "
        f"model written to {out}"
    )


def fingerprints(texts: Iterable[str]) -> list[str]:
    """Short hashes of texts (case and spacing folded): a model keeps them to spot test data it was trained on."""
    return [hashlib.blake2b(" ".join(t.casefold().split()).encode(), digest_size=8).hexdigest() for t in texts]


def _print_report(report: dict[str, Any], model: Model) -> None:
    click.echo(f"pipeline       {model.pipeline}")
    click.echo(f"threshold      {model.threshold:.4f}   ({model.metadata.get('threshold_source', 'unknown')}; "
               f"nlu_fallback below it)")
    click.echo(f"examples       {report['examples']}")
    click.echo(f"accuracy       {report['accuracy']:.4f}   (as answered: nlu_fallback counts as the answer)")
    click.echo(f"best intent    {report['top1_accuracy']:.4f}   (the best intent other than nlu_fallback)")
    click.echo(f"macro F1       {report['macro_f1']:.4f}")
    click.echo(f"fallback rate  {report['fallback_rate']:.4f}")
    if "oos_recall" in report:
        in_scope = report["in_scope_accuracy"]
        click.echo(f"in-scope accuracy    {in_scope:.4f}" if in_scope is not None else "in-scope accuracy    n/a")
        click.echo(f"out-of-scope recall  {report['oos_recall']:.4f}")
    click.echo("")
    width = max(len(name) for name in report["per_intent"])
    click.echo(f"{'intent':<{width}}  precision  recall  f1      support")
    for name, s in report["per_intent"].items():
        click.echo(f"{name:<{width}}  {s['precision']:.3f}      {s['recall']:.3f}   {s['f1']:.3f}   {s['support']}")
    if report["confused_pairs"]:
        click.echo("")
        click.echo("most confused (intent -> predicted: count)")
        for pair in report["confused_pairs"]:
            click.echo(f"  {pair['intent']} -> {pair['predicted']}: {pair['count']}")


@nlu.command()
@click.option("--model", "model_path", required=True, type=click.Path(), help="Model directory written by 'nlu train'.")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def evaluate(model_path: str, data: tuple[str, ...], as_json: bool) -> None:
    """Score a model on labelled DATA: accuracy, macro F1, per intent, confusions, out-of-scope."""
    model = _load(model_path)
    test_data = _read_data(data)
    seen = set(model.metadata.get("training_texts") or ())
    if seen:
        tested = fingerprints(e.text for e in test_data.examples)
        overlap = sum(1 for f in tested if f in seen)
        if overlap:
            click.echo(f"warning: {overlap} of {len(tested)} test examples ({overlap / len(tested):.0%}) are in the model's "
                       "training data; the scores overstate how it does on new text", err=True)
    report = evaluate_model(model, test_data)
    if as_json:
        report.update(pipeline=model.pipeline, threshold=model.threshold,
                      threshold_source=model.metadata.get("threshold_source"))
        click.echo(json.dumps(report, ensure_ascii=False))
    else:
        _print_report(report, model)


@nlu.command()
@click.option("--model", "model_path", required=True, type=click.Path(), help="Model directory written by 'nlu train'.")
@click.argument("text")
def parse(model_path: str, text: str) -> None:
    """Print the Rasa-shaped parse of TEXT as JSON."""
    model = _load(model_path)
    answer = model.parse(text)
    sys.stdout.flush()
    click.echo(json.dumps(answer, ensure_ascii=False, indent=2))
