"""The trained NLU model: training, Rasa-shaped parse answers, and a pickle-free file format.

Saved as JSON metadata plus a NumPy `.npz` of arrays (loaded with
`allow_pickle=False`), so loading a model someone sent you cannot run code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nlu.classifier import LinearIntentModel, softmax
from nlu.dense import DenseHead
from nlu.embedding import EmbedExtraMissing, SentenceEncoder, load_encoder
from nlu.entities import DataEntityExtractor
from nlu.features import Featurizer, row_sums
from nlu.names import FALLBACK_INTENT
from nlu.oos_detector import OosDetector

MODEL_FORMAT = "dangol-nlu-model"
MODEL_FORMAT_VERSION = 2  # 2: the fast tier's out-of-scope neighbour signals (nlu.oos_detector)
METADATA_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
RANKING_LENGTH = 10


class ModelError(ValueError):
    """A path that is not a usable model (missing, another format, a newer version)."""


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
    #: accurate pipeline: the embedding model, and the encoder that embeds each parsed text
    dense: DenseHead | None = None
    encoder: SentenceEncoder | None = None
    #: with an `oos` intent in the training data: the out-of-scope probability (nlu.oos_detector)
    oos: OosDetector | None = None

    @property
    def pipeline(self) -> str:
        return "accurate" if self.dense is not None else "fast"

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
        scores = m.scores_many(starts, cols, vals)
        vectors = None
        if self.dense is not None and len(texts):
            if self.encoder is None:
                raise ModelError("an accurate model needs its sentence encoder (load it with load_model)")
            vectors = self.encoder.encode(texts)
            scores = scores + self.dense.mix * self.dense.scores(vectors)
        if self.oos is not None and len(texts):
            proba = self.oos.proba(scores / m.temperature, vectors if self.oos.space == "embedding" else (starts, cols, vals))
        else:
            proba = softmax(scores, m.temperature)
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

    @property
    def encoder_id(self) -> str | None:
        return self.encoder.model_id if self.encoder is not None else None

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
        if self.dense is not None:
            arrays["dense_weights"] = self.dense.weights
            arrays["dense_bias"] = self.dense.bias
        oos_meta = None
        if self.oos is not None:
            oos_meta, oos_arrays = self.oos.to_state()
            arrays.update(oos_arrays)
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
            "dense": None if self.dense is None else {"mix": self.dense.mix, "model_id": self.encoder_id},
            "oos_detector": oos_meta,
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
        dense, encoder = _load_dense(directory, meta.get("dense"), arrays)
        oos = OosDetector.from_state(meta["oos_detector"], arrays) if meta.get("oos_detector") else None
        return Model(intent_model, float(meta["threshold"]), DataEntityExtractor(meta["extractor"]), selectors,
                     meta.get("responses") or {}, meta.get("metadata") or {}, dense, encoder, oos)
    except EmbedExtraMissing as exc:
        raise ModelError(f"{directory}: {exc}") from None
    except ModelError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{directory}: corrupt model ({type(exc).__name__}: {exc})") from None


def _load_dense(directory: Path, meta: Any, arrays: dict[str, np.ndarray]) -> tuple[DenseHead | None, SentenceEncoder | None]:
    """The embedding part of an accurate model, with the encoder it was trained with (EmbedExtraMissing without it)."""
    if not meta:
        return None, None
    encoder = load_encoder()
    if meta.get("model_id") != encoder.model_id:
        raise ModelError(f"{directory}: trained with embedding model {meta.get('model_id')!r}, "
                         f"but {encoder.model_id!r} is installed: train the model again")
    return DenseHead(arrays["dense_weights"], arrays["dense_bias"], float(meta["mix"])), encoder
