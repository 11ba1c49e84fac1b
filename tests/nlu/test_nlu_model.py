"""The built-in model: Rasa's parse answer shape, persistence, fallback, calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlu import FALLBACK_INTENT, Model, ModelError, TrainingData, load_model, train
import scipy.sparse as sp

from nlu.features import Featurizer, _vectorizer, normalize_text

GREET = ["hi", "hello", "hey there", "good morning", "hello friend", "hi bot", "hey", "good evening"]
BYE = ["bye", "goodbye", "see you later", "see you", "bye bye", "good night", "farewell", "talk to you later"]
ORDER = ["where is my order", "track my order", "my order has not arrived", "order status please",
         "when will my order arrive", "has my order shipped", "status of order 12345", "where is my package"]


@pytest.fixture(scope="module")
def small_model() -> Model:
    pairs = [(t, "greet") for t in GREET] + [(t, "goodbye") for t in BYE] + [(t, "order_status") for t in ORDER]
    return train(TrainingData.from_pairs(pairs))


def test_parse_answers_in_rasa_shape(small_model: Model) -> None:
    answer = small_model.parse("where is my order #12345?")
    assert answer["text"] == "where is my order #12345?"
    assert answer["intent"]["name"] == "order_status"
    assert isinstance(answer["intent"]["confidence"], float)
    assert [r["name"] for r in answer["intent_ranking"]][0] == "order_status"
    assert abs(sum(r["confidence"] for r in answer["intent_ranking"]) - 1.0) < 1e-6
    assert answer["entities"] == [
        {"entity": "order_number", "start": 19, "end": 24, "value": "12345", "extractor": "BuiltinEntityExtractor"}
    ]
    json.dumps(answer)  # JSON-serialisable as is


@pytest.fixture(scope="module")
def selector_model() -> Model:
    pairs = [(t, "greet") for t in GREET] + [
        ("what is your name", "chitchat/ask_name"), ("who are you", "chitchat/ask_name"), ("your name?", "chitchat/ask_name"),
        ("how is the weather", "chitchat/ask_weather"), ("is it raining", "chitchat/ask_weather"), ("is it sunny", "chitchat/ask_weather"),
    ]
    return train(TrainingData.from_pairs(pairs))


@pytest.fixture(scope="module")
def oos_model() -> Model:
    """With an `oos` intent: parse adds the out-of-scope regression and its nearest-example similarity."""
    off_topic = ["what's the weather", "tell me a joke", "play some music", "who won the game", "how tall is everest",
                 "book a flight", "recommend a movie", "what time is it in tokyo"]
    pairs = [(t, "greet") for t in GREET] + [(t, "order_status") for t in ORDER] + [(t, "oos") for t in off_topic]
    model = train(TrainingData.from_pairs(pairs))
    assert model.oos is not None
    return model


BATCH_TEXTS = GREET + ORDER + ["", "   ", "?", "주문 어디", "what's the weather like", "hello hello hello", "ｈｅｌｌｏ", "x" * 300]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(BATCH_TEXTS), min_size=1, max_size=12))
def test_a_text_parsed_in_a_batch_gets_the_answer_it_gets_alone(small_model: Model, selector_model: Model, oos_model: Model,
                                                                texts: list[str]) -> None:
    for model in (small_model, selector_model, oos_model):
        assert model.parse_many(texts) == [model.parse(text) for text in texts]


def test_ranking_holds_at_most_ten_intents() -> None:
    pairs = [(f"topic{i} question number {j}", f"intent_{i}") for i in range(15) for j in range(3)]
    answer = train(TrainingData.from_pairs(pairs)).parse("topic3 question")
    assert len(answer["intent_ranking"]) == 10


def test_low_confidence_answers_nlu_fallback_with_the_ranking_kept(small_model: Model) -> None:
    top = small_model.parse("hello")["intent"]["confidence"]
    above = (top + 1.0) / 2  # a threshold just above what "hello" reaches
    strict = Model(small_model.intent_model, above, small_model.extractor)
    answer = strict.parse("hello")
    assert answer["intent"] == {"name": FALLBACK_INTENT, "confidence": above}
    assert answer["intent_ranking"][1]["name"] == "greet"


def test_threshold_without_oos_intent_is_a_confidence_floor_chosen_out_of_fold(small_model: Model) -> None:
    assert small_model.metadata["threshold_source"] == "out-of-fold"
    assert 0.0 <= small_model.threshold <= 0.3
    choice = small_model.metadata["threshold_choice"]
    assert choice["right_fallback_rate"] <= choice["budget"]


def test_floor_threshold_keeps_all_but_the_budget_of_right_answers() -> None:
    from nlu.thresholds import choose_floor_threshold

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(2000, 5))
    gold = scores.argmax(axis=1)
    gold[:200] = (gold[:200] + 1) % 5  # 10% wrong
    proba = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    t, stats = choose_floor_threshold(proba, gold, budget=0.01, cap=0.9)
    right = proba.argmax(axis=1) == gold
    conf = proba.max(axis=1)
    assert (conf[right] < t).mean() <= 0.01
    assert (conf[right] < np.nextafter(t, 1.0) + 1e-9).mean() > 0.005  # the largest such threshold, not zero
    assert stats["right_fallback_rate"] <= 0.01
    assert choose_floor_threshold(proba, gold, budget=0.5, cap=0.3)[0] == 0.3  # capped


def test_explicit_threshold_wins() -> None:
    pairs = [(t, "greet") for t in GREET] + [(t, "goodbye") for t in BYE]
    assert train(TrainingData.from_pairs(pairs), threshold=0.55).threshold == 0.55


def test_saved_model_loads_and_answers_identically(small_model: Model, tmp_path: Path) -> None:
    small_model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    for text in ["hi", "bye now", "track order A1B2C3", "완전히 다른 말"]:
        assert loaded.parse(text) == small_model.parse(text)


def test_loading_a_folder_that_is_not_a_model_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a Dangol NLU model"):
        load_model(tmp_path)
    with pytest.raises(ModelError, match="no such model"):
        load_model(tmp_path / "missing")


def test_a_model_of_another_format_version_is_refused(small_model: Model, tmp_path: Path) -> None:
    small_model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="version 99"):
        load_model(tmp_path / "m")


FIT_TEXTS = ["Hello WORLD", "ｆｕｌｌ-width Ｔｅｘｔ", "주문했는데 아직 안 왔어요", "a a a b", "other words here",
             "where is my card?", "I  lost\tmy\n card", "카드를 잃어버렸어요"]


def _assert_same_as_sklearn(fit_texts: list[str], texts: list[str]) -> None:
    """transform_many, on each text alone and on all together, against scikit-learn's own TfidfVectorizers fitted on the same texts."""
    f = Featurizer(char_raw_ngrams=(2, 5))
    f.fit_transform(fit_texts)
    fitted = [_vectorizer(kind, ngrams).fit([normalize_text(t) for t in fit_texts]) for kind, ngrams in f._specs()]
    matrix = sp.hstack([v.transform([normalize_text(t) for t in texts]) for v in fitted]).toarray()
    together = f.transform(texts).toarray()
    for i, text in enumerate(texts):
        alone = f.transform([text]).toarray()[0]
        assert np.allclose(alone, matrix[i]), text
        assert np.array_equal(together[i], alone), text


def test_fast_featurizer_equals_sklearn_transform() -> None:
    _assert_same_as_sklearn(FIT_TEXTS, FIT_TEXTS + ["", "  ", "?", "x", "card card  card", "lost 카드"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("abcd 카드\t\n-?Ａ")), max_size=30), min_size=1, max_size=5))
def test_fast_featurizer_equals_sklearn_on_any_text(texts: list[str]) -> None:
    _assert_same_as_sklearn(FIT_TEXTS + ["abcd 카드 a-b ab? Ａ"], texts)


def test_single_intent_data_still_trains() -> None:
    model = train(TrainingData.from_pairs([("hi", "greet"), ("hello", "greet")]))
    assert model.parse("hey")["intent"] == {"name": "greet", "confidence": 1.0}


def test_blank_text_is_a_fallback(small_model: Model) -> None:
    assert small_model.parse("  ")["intent"]["name"] == FALLBACK_INTENT


def test_retrieval_intents_fill_the_response_selector() -> None:
    pairs = [(t, "greet") for t in GREET] + [
        ("what is your name", "chitchat/ask_name"), ("who are you", "chitchat/ask_name"), ("your name?", "chitchat/ask_name"),
        ("how is the weather", "chitchat/ask_weather"), ("is it raining", "chitchat/ask_weather"), ("is it sunny", "chitchat/ask_weather"),
    ]
    answer = train(TrainingData.from_pairs(pairs)).parse("what's the weather like")
    assert answer["intent"]["name"] == "chitchat"
    selected = answer["response_selector"]["chitchat"]["response"]
    assert selected["intent_response_key"] == "chitchat/ask_weather"
    assert selected["utter_action"] == "utter_chitchat/ask_weather"


def test_featurizer_state_without_raw_char_block_still_loads() -> None:
    f = Featurizer((1, 2), (1, 4))
    f.fit_transform(["hello there", "good bye"])
    meta, arrays = f.to_state()
    meta.pop("char_raw_ngrams")  # as written before the raw char block existed
    g = Featurizer.from_state(meta, arrays)
    assert g.char_raw_ngrams is None and len(g.blocks) == 2
    assert np.allclose(g.transform(["hello"]).toarray(), f.transform(["hello"]).toarray())


def test_two_svms_fill_disjoint_columns(small_model: Model) -> None:
    m = small_model.intent_model
    assert [b.analyzer_kind for b in m.featurizer.blocks] == ["word", "char_wb", "char"]
    (w_lo, _), (_, cwb_hi), (c_lo, c_hi) = m.featurizer.block_columns()
    assert cwb_hi == c_lo and c_hi == m.weights.shape[0]
    assert np.abs(m.weights[w_lo:cwb_hi]).sum() > 0 and np.abs(m.weights[c_lo:c_hi]).sum() > 0


def test_second_svm_is_left_out_on_large_data() -> None:
    from nlu.classifier import ClassifierConfig, effective_config

    config = ClassifierConfig()
    assert effective_config(config, 10_000, 77).char_raw_ngrams == (2, 5)  # BANKING77
    assert effective_config(config, 15_000, 151).char_raw_ngrams is None  # CLINC150 with oos
    assert config.char_raw_ngrams == (2, 5)  # not modified in place
