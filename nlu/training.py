"""Training a model from `TrainingData`: the fast or accurate pipeline, calibrated on out-of-fold scores.

    fast      sparse word and character n-gram TF-IDF, linear SVMs (nlu.classifier)
    accurate  fast + an all-MiniLM-L6-v2 sentence embedding with its own linear SVM (nlu.dense),
              the two models' scores added with a weight chosen on out-of-fold scores

Every example is scored out of fold first (nlu.calibration), the choices are
made on those scores, and then the models are fitted on all examples. With an
`oos` intent, both pipelines add the out-of-scope regression (nlu.oos_detector).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import sklearn
from sklearn.svm import LinearSVC

from nlu.calibration import Calibration, calibrate, out_of_fold
from nlu.classifier import ClassifierConfig, LinearIntentModel, effective_config, fit_linear
from nlu.dense import DenseHead, fit_dense
from nlu.embedding import SentenceEncoder, load_encoder
from nlu.embedding_cache import EmbeddingCache, default_cache_dir
from nlu.entities import DataEntityExtractor
from nlu.model import Model, ResponseSelector
from nlu.names import OOS_INTENT
from nlu.oos_detector import Neighbours, OosDetector
from nlu.settings import EMBEDDING_LANGUAGES, NluSettings
from nlu.training_data import TrainingData

#: Pass as `embedding_cache` to keep no vectors on disk.
NO_CACHE = "none"


def _noop(_: str) -> None:
    return None


def _fit_selectors(data: TrainingData, intent_model: LinearIntentModel, config: ClassifierConfig) -> dict[str, ResponseSelector]:
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


def _oos_detector(chosen: Calibration, texts: list[str], labels: list[str], classes: list[str], oos_intent: str,
                  intent_model: LinearIntentModel, vectors: np.ndarray | None) -> OosDetector | None:
    """The out-of-scope regression with the training examples its neighbour signals are measured against."""
    if chosen.oos_coef is None:
        return None
    is_oos = np.array([lab == oos_intent for lab in labels])
    gold = np.array([classes.index(lab) for lab in labels])
    if vectors is not None:
        neighbours = Neighbours.embedding(vectors[is_oos], vectors[~is_oos], gold[~is_oos])
    else:
        transform = intent_model.featurizer.transform
        neighbours = Neighbours.tfidf(transform([t for t, o in zip(texts, is_oos) if o]),
                                      transform([t for t, o in zip(texts, is_oos) if not o]), gold[~is_oos])
    return OosDetector(classes.index(oos_intent), chosen.oos_coef, chosen.oos_intercept, neighbours)


def _embed(texts: list[str], cache_dir: Any, say: Callable[[str], None]) -> tuple[np.ndarray, SentenceEncoder, dict[str, Any]]:
    """Vectors of the training texts, through the cache; progress about every tenth of the way."""
    encoder = load_encoder()
    directory = None if cache_dir == NO_CACHE else (default_cache_dir() if cache_dir is None else cache_dir)
    cache = EmbeddingCache(directory, encoder.model_id, encoder.dimension)
    started = time.perf_counter()
    step = max(1, len(texts) // 10)
    shown = [0]

    def encode(missing: list[str]) -> np.ndarray:
        say(f"embedding {len(missing)} new texts ({len(texts) - len(missing)} from the cache)")

        def progress(done: int, total: int) -> None:
            if done - shown[0] >= step or done == total:
                shown[0] = done
                say(f"embedding {done}/{total}")

        return encoder.encode(missing, progress)

    vectors, embedded = cache.embed(texts, encode)
    if not embedded:
        say(f"embedding: all {len(texts)} texts from the cache")
    info = {"model": encoder.model_id, "embedded": embedded, "from_cache": len(texts) - embedded,
            "seconds": round(time.perf_counter() - started, 3), "cache": str(cache.folder) if cache.folder else None}
    return vectors, encoder, info


def train(
    data: TrainingData,
    *,
    threshold: float | None = None,
    config: ClassifierConfig | None = None,
    settings: NluSettings | None = None,
    oos_intent: str = OOS_INTENT,
    entity_builtins: bool = True,
    progress: Callable[[str], None] | None = None,
    embedding_cache: Any = None,
) -> Model:
    """Train the pipeline `settings` names on the deduplicated examples.

    threshold: a fixed `nlu_fallback` threshold; None chooses it on out-of-fold
    confidences (nlu.thresholds): with an `oos_intent` in the data, on the
    out-of-scope regression's probabilities (nlu.oos_detector), weighing
    in-scope accuracy and oos recall by `settings.expected_oos_rate` (or
    reaching `settings.target_oos_recall`); without, a confidence floor. With
    data too small to hold any out, nlu.calibration.DEFAULT_THRESHOLD.
    embedding_cache: the vectors' cache directory (default: nlu.embedding_cache.default_cache_dir()), or NO_CACHE.
    """
    say = progress or _noop
    config = config or ClassifierConfig()
    settings = settings or NluSettings()
    started = time.perf_counter()
    examples = data.examples
    if not examples:
        raise ValueError("no training examples (the files hold no intent examples)")
    texts = [e.text for e in examples]
    labels = [e.intent for e in examples]
    classes = sorted(set(labels))
    say(f"training the {settings.pipeline} pipeline on {len(texts)} unique examples of {len(classes)} intents")
    pipeline = settings.pipeline
    if pipeline == "accurate" and not settings.embeds:
        say(f"language '{settings.language}': the accurate pipeline's sentence embedding covers "
            f"{', '.join(EMBEDDING_LANGUAGES)} only, so the fast pipeline is trained instead")
        pipeline = "fast"
    info: dict[str, Any] = {"examples": len(texts), "examples_as_written": len(data.examples_as_written),
                            "intents": len(classes), "pipeline": pipeline, "settings": settings.to_dict()}
    vectors, encoder = None, None
    if pipeline == "accurate":
        vectors, encoder, info["embedding"] = _embed(texts, embedding_cache, say)
    config = effective_config(config, len(texts), len(classes))
    oof = out_of_fold(texts, labels, classes, config, vectors, say, oos_intent)
    chosen = calibrate(oof, classes, config, settings, threshold, oos_intent, say)
    info.update(chosen.info)
    say(f"fitting on all {len(texts)} examples")
    intent_model = fit_linear(texts, labels, classes, config)
    intent_model.temperature = chosen.temperature
    dense: DenseHead | None = None
    if vectors is not None:
        gold = np.array([classes.index(lab) for lab in labels])
        dense = fit_dense(vectors, gold, len(classes), config.dense_C, config.seed)
        dense.mix = chosen.mix
    oos = _oos_detector(chosen, texts, labels, classes, oos_intent, intent_model, vectors)
    selectors = _fit_selectors(data, intent_model, config)
    extractor = DataEntityExtractor.from_data(data, builtins=entity_builtins)
    info.update(
        threshold_source=chosen.threshold_source,
        config={"word_ngrams": list(config.word_ngrams), "char_ngrams": list(config.char_ngrams),
                "char_raw_ngrams": list(config.char_raw_ngrams) if config.char_raw_ngrams else None, "C": config.C,
                "fallback_budget": config.fallback_budget, "calibration_folds": config.calibration_folds,
                "dense_C": config.dense_C if dense is not None else None,
                "embedding_weight": chosen.mix if dense is not None else None},
        features=intent_model.featurizer.n_features,
        train_seconds=round(time.perf_counter() - started, 3),
        sklearn_version=sklearn.__version__,
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        sources=list(data.sources),
    )
    say(f"done in {info['train_seconds']:.1f} s")
    return Model(intent_model, chosen.threshold, extractor, selectors, dict(data.responses), info, dense, encoder, oos)
