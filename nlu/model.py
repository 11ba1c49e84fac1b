"""The trained NLU model: training, Rasa-shaped parse answers, and a pickle-free file format.

Saved as JSON metadata plus a NumPy `.npz` of arrays (loaded with
`allow_pickle=False`), so loading a model someone sent you cannot run code.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import sklearn

from nlu.classifier import (
    FALLBACK_INTENT,
    ClassifierConfig,
    LinearIntentModel,
    choose_floor_threshold,
    choose_threshold,
    effective_config,
    expected_calibration_error,
    fit_linear,
    fit_temperature,
    softmax,
    validation_scores,
)
from nlu.entities import DataEntityExtractor
from nlu.features import Featurizer, row_sums
from nlu.training_data import TrainingData

MODEL_FORMAT = "dangol-nlu-model"
MODEL_FORMAT_VERSION = 1
METADATA_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
DEFAULT_THRESHOLD = 0.3
OOS_INTENT = "oos"
RANKING_LENGTH = 10


class ModelError(ValueError):
    """A path that is not a usable model (missing, another format, a newer version)."""


def _noop(_: str) -> None:
    return None


@dataclass
class ResponseSelector:
    """Chooses the response key of a retrieval intent (`chitchat` -> `ask_name`)."""

    intent: str
    keys: list[str]
    weights: np.ndarray  # (n_features, n_keys)
    bias: np.ndarray


@dataclass
class Model:
    """Intent classifier, entity extractors and response selectors behind one `parse`."""

    intent_model: LinearIntentModel
    threshold: float
    extractor: DataEntityExtractor
    selectors: dict[str, ResponseSelector] = field(default_factory=dict)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def intents(self) -> list[str]:
        return list(self.intent_model.classes)

    def parse(self, text: str) -> dict[str, Any]:
        """Rasa's `POST /model/parse` answer for `text`."""
        return self.parse_many([text])[0]

    def parse_many(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """`parse` of each text, computed together (see nlu.features); each answer is the one it gets alone."""
        m = self.intent_model
        starts, cols, vals = m.featurizer.transform_many(texts)
        proba = softmax(m.scores_many(starts, cols, vals), m.temperature)
        rankings = np.argsort(-proba, axis=1)[:, :RANKING_LENGTH].tolist()
        confidences = proba.tolist()  # one conversion, not a numpy scalar per ranked intent
        selected = self._select_responses(starts, cols, vals) if self.selectors else None
        answers: list[dict[str, Any]] = []
        for i, text in enumerate(texts):
            if not text or not text.strip():
                answers.append({"text": text, "intent": {"name": FALLBACK_INTENT, "confidence": 0.0}, "intent_ranking": [], "entities": []})
                continue
            ranking = [{"name": m.classes[j], "confidence": confidences[i][j]} for j in rankings[i]]
            answer: dict[str, Any] = {"text": text}
            if ranking[0]["confidence"] < self.threshold:
                answer["intent"] = {"name": FALLBACK_INTENT, "confidence": float(self.threshold)}
                answer["intent_ranking"] = [dict(answer["intent"])] + ranking
            else:
                answer["intent"] = dict(ranking[0])
                answer["intent_ranking"] = ranking
            answer["entities"] = self.extractor.extract(text)
            if selected is not None:
                answer["response_selector"] = selected[i]
            answers.append(answer)
        return answers

    def _select_responses(self, starts: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> list[dict[str, Any]]:
        """Rasa's `response_selector` part of each text's answer."""
        out: list[dict[str, Any]] = [{
            "all_retrieval_intents": sorted(self.selectors),
            "default": {
                "response": {"responses": None, "confidence": 0.0, "intent_response_key": None, "utter_action": "utter_None"},
                "ranking": [],
            },
        } for _ in range(len(starts) - 1)]
        for intent, sel in self.selectors.items():
            scores = row_sums(sel.weights[cols] * vals[:, None], starts) + sel.bias
            proba = softmax(scores, self.intent_model.temperature) if len(sel.keys) > 1 else np.ones((len(out), 1))
            for i, row in enumerate(proba.tolist()):
                order = sorted(range(len(row)), key=lambda k: -row[k])[:RANKING_LENGTH]
                best = f"{intent}/{sel.keys[order[0]]}"
                out[i][intent] = {
                    "response": {
                        "responses": self.responses.get(f"utter_{best}"),
                        "confidence": row[order[0]],
                        "intent_response_key": best,
                        "utter_action": f"utter_{best}",
                    },
                    "ranking": [{"confidence": row[k], "intent_response_key": f"{intent}/{sel.keys[k]}"} for k in order],
                }
        return out

    # --- persistence -----------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model into directory `path` (created); returns the directory."""
        directory = Path(path)
        if directory.exists() and not directory.is_dir():
            raise ModelError(f"{directory}: exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        feat_meta, arrays = self.intent_model.featurizer.to_state()
        arrays = dict(arrays)
        arrays["weights"] = self.intent_model.weights
        arrays["bias"] = self.intent_model.bias
        for i, sel in enumerate(self.selectors.values()):
            arrays[f"selector_{i}_weights"] = sel.weights
            arrays[f"selector_{i}_bias"] = sel.bias
        meta = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "classes": self.intent_model.classes,
            "temperature": self.intent_model.temperature,
            "threshold": self.threshold,
            "featurizer": feat_meta,
            "extractor": self.extractor.state,
            "selectors": [{"intent": s.intent, "keys": s.keys} for s in self.selectors.values()],
            "responses": self.responses,
            "metadata": self.metadata,
        }
        tmp_arrays = directory / (ARRAYS_FILE + ".tmp.npz")
        np.savez(tmp_arrays, **arrays)
        tmp_meta = directory / (METADATA_FILE + ".tmp")
        tmp_meta.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp_arrays, directory / ARRAYS_FILE)
        os.replace(tmp_meta, directory / METADATA_FILE)  # last: its presence marks a complete model
        return directory


def load_model(path: str | os.PathLike[str]) -> Model:
    """Load a model saved by `Model.save`; `ModelError` says why a path is not one."""
    directory = Path(path)
    if not directory.exists():
        raise ModelError(f"{directory}: no such model directory")
    if directory.is_file() and directory.name == METADATA_FILE:
        directory = directory.parent
    if not directory.is_dir():
        raise ModelError(f"{directory}: not a model directory (expected a folder written by 'nlu train')")
    meta_path = directory / METADATA_FILE
    if not meta_path.is_file():
        raise ModelError(f"{directory}: not a Dangol NLU model (no {METADATA_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{meta_path}: corrupt model metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ModelError(f"{directory}: not a Dangol NLU model (format marker missing)")
    version = meta.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise ModelError(f"{directory}: model format version {version} is not supported (this code reads {MODEL_FORMAT_VERSION})")
    try:
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        featurizer = Featurizer.from_state(meta["featurizer"], arrays)
        intent_model = LinearIntentModel(
            featurizer, list(meta["classes"]), arrays["weights"], arrays["bias"], float(meta["temperature"])
        )
        selectors = {
            s["intent"]: ResponseSelector(s["intent"], list(s["keys"]), arrays[f"selector_{i}_weights"], arrays[f"selector_{i}_bias"])
            for i, s in enumerate(meta["selectors"])
        }
        return Model(intent_model, float(meta["threshold"]), DataEntityExtractor(meta["extractor"]), selectors,
                     meta.get("responses") or {}, meta.get("metadata") or {})
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{directory}: corrupt model ({type(exc).__name__}: {exc})") from None


def _fit_selectors(data: TrainingData, intent_model: LinearIntentModel, config: ClassifierConfig) -> dict[str, ResponseSelector]:
    from sklearn.svm import LinearSVC

    selectors: dict[str, ResponseSelector] = {}
    for intent in data.retrieval_intents:
        examples = [e for e in data.examples if e.intent == intent and e.response_key]
        keys = sorted({e.response_key for e in examples if e.response_key})
        n = intent_model.featurizer.n_features
        weights = np.zeros((n, len(keys)), dtype=np.float32)
        bias = np.zeros(len(keys))
        if len(keys) > 1:
            X = intent_model.featurizer.transform([e.text for e in examples])
            svm = LinearSVC(C=config.C, random_state=config.seed).fit(X, [e.response_key for e in examples])
            coef, intercept = np.asarray(svm.coef_), np.asarray(svm.intercept_)
            if len(keys) == 2:
                coef, intercept = np.vstack([-coef[0], coef[0]]) / 2, np.array([-intercept[0], intercept[0]]) / 2
            for k, key in enumerate(svm.classes_):
                j = keys.index(str(key))
                weights[:, j], bias[j] = coef[k], intercept[k]
        selectors[intent] = ResponseSelector(intent, keys, weights, bias)
    return selectors


def train(
    data: TrainingData,
    *,
    threshold: float | None = None,
    config: ClassifierConfig | None = None,
    oos_intent: str = OOS_INTENT,
    entity_builtins: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Model:
    """Train on deduplicated examples; pick temperature (and threshold with an `oos` intent) on held-out data.

    threshold: fixed `nlu_fallback` threshold. None means chosen on the validation
    split of the training data: with an `oos_intent`, the threshold maximising
    (in-scope accuracy + oos recall) / 2 (`choose_threshold`); without one, the
    largest threshold that sends at most `config.fallback_budget` (0.1%) of the
    validation examples the model gets right to nlu_fallback, capped at
    DEFAULT_THRESHOLD (`choose_floor_threshold`). With no validation split
    possible (tiny data), DEFAULT_THRESHOLD.
    """
    say = progress or _noop
    config = config or ClassifierConfig()
    started = time.perf_counter()
    examples = data.examples
    if not examples:
        raise ValueError("no training examples (the files hold no intent examples)")
    texts = [e.text for e in examples]
    labels = [e.intent for e in examples]
    classes = sorted(set(labels))
    say(f"training on {len(texts)} unique examples of {len(classes)} intents")
    config = effective_config(config, len(texts), len(classes))
    validation = validation_scores(texts, labels, classes, config, say)
    temperature = 1.0
    info: dict[str, Any] = {"examples": len(texts), "examples_as_written": len(data.examples_as_written), "intents": len(classes)}
    chosen_threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    threshold_source = "default" if threshold is None else "given"
    if validation is not None:
        temperature = fit_temperature(validation.scores, validation.gold)
        proba = softmax(validation.scores, temperature)
        info["validation"] = {
            "method": validation.method,
            "size": int(len(validation.gold)),
            "accuracy": float((proba.argmax(axis=1) == validation.gold).mean()),
            "ece": expected_calibration_error(proba, validation.gold),
            "ece_before_temperature": expected_calibration_error(softmax(validation.scores, 1.0), validation.gold),
        }
        say(f"calibrated: temperature {temperature:.3f}, validation accuracy {info['validation']['accuracy']:.3f}, "
            f"ECE {info['validation']['ece']:.3f}")
        if threshold is None and oos_intent in classes:
            chosen_threshold, stats = choose_threshold(proba, validation.gold, classes.index(oos_intent))
            threshold_source = "validation"
            info["threshold_choice"] = stats
            say(f"threshold {chosen_threshold:.3f} chosen on validation "
                f"(in-scope accuracy {stats.get('in_scope_accuracy', 0):.3f}, oos recall {stats.get('oos_recall', 0):.3f})")
        elif threshold is None:
            chosen_threshold, stats = choose_floor_threshold(proba, validation.gold, config.fallback_budget,
                                                             config.max_floor_threshold)
            threshold_source = "validation"
            info["threshold_choice"] = stats
            say(f"threshold {chosen_threshold:.3f} chosen on validation (confidence floor: "
                f"{stats.get('right_fallback_rate', 0):.4f} of right answers fall back)")
    say(f"fitting on all {len(texts)} examples")
    intent_model = fit_linear(texts, labels, classes, config)
    intent_model.temperature = temperature
    selectors = _fit_selectors(data, intent_model, config)
    extractor = DataEntityExtractor.from_data(data, builtins=entity_builtins)
    info.update(
        threshold_source=threshold_source,
        config={"word_ngrams": list(config.word_ngrams), "char_ngrams": list(config.char_ngrams),
                "char_raw_ngrams": list(config.char_raw_ngrams) if config.char_raw_ngrams else None, "C": config.C,
                "fallback_budget": config.fallback_budget},
        features=intent_model.featurizer.n_features,
        train_seconds=round(time.perf_counter() - started, 3),
        sklearn_version=sklearn.__version__,
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        sources=list(data.sources),
    )
    say(f"done in {info['train_seconds']:.1f} s")
    return Model(intent_model, chosen_threshold, extractor, selectors, dict(data.responses), info)
