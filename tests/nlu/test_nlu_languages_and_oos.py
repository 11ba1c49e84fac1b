"""Korean with agglutinated particles, and out-of-scope threshold choice on out-of-fold confidences."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from nlu import Model, NluSettings, TrainingData, evaluate, load_model, train

KOREAN = {
    "order_status": ["주문 조회하고 싶어요", "제 주문 어디까지 왔나요", "주문 상태 알려주세요", "주문한 거 확인해 주세요",
                     "주문 내역 보여줘", "주문번호로 조회", "check my order", "where is my order"],
    "delivery": ["배송 언제 와요", "배송이 너무 늦어요", "택배 아직 안 왔어요", "배송 조회 부탁드려요",
                 "배송지 변경하고 싶어요", "언제 도착하나요", "when will it be delivered", "delivery is late"],
    "refund": ["환불해 주세요", "환불 받고 싶어요", "결제 취소하고 환불", "환불 규정이 어떻게 되나요",
               "돈 돌려받고 싶어요", "반품하고 환불", "i want a refund", "refund my money"],
    "greet": ["안녕하세요", "안녕", "반가워요", "좋은 아침이에요", "안녕하십니까", "하이", "hello", "hi there"],
}


@pytest.fixture(scope="module")
def korean_model():  # type: ignore[no-untyped-def]
    pairs = [(t, intent) for intent, texts in KOREAN.items() for t in texts]
    return train(TrainingData.from_pairs(pairs))


@pytest.mark.parametrize(
    "text, intent",
    [
        ("주문을 조회하려고요", "order_status"),  # 주문 + object particle 을
        ("제 주문은 어떻게 됐나요", "order_status"),  # topic particle 은
        ("배송은 언제쯤 되나요", "delivery"),
        ("택배가 아직도 안 와요", "delivery"),  # subject particle 가
        ("환불을 받을 수 있을까요", "refund"),
        ("환불이 가능한가요", "refund"),
        ("안녕하세요~ 반갑습니다", "greet"),
    ],
)
def test_unseen_korean_phrasings_with_particles(korean_model, text: str, intent: str) -> None:  # type: ignore[no-untyped-def]
    answer = korean_model.parse(text)
    assert answer["intent_ranking"][0]["name"] == intent
    assert answer["intent"]["name"] == intent  # confident enough not to fall back


def test_full_width_and_case_are_normalised(korean_model) -> None:  # type: ignore[no-untyped-def]
    assert korean_model.parse("ＲＥＦＵＮＤ ＭＹ ＭＯＮＥＹ")["intent"]["name"] == "refund"


def _synthetic_oos(seed: int) -> TrainingData:
    """Four in-scope intents built from templates, and varied off-topic chatter as `oos`."""
    rng = random.Random(seed)
    topics = {
        "card_lost": (["i lost my card", "my card was stolen", "card missing", "can't find my card"], ["please help", "what now", "urgently", "today"]),
        "balance": (["what is my balance", "how much money do i have", "show my balance", "account balance"], ["please", "now", "in my account", "today"]),
        "transfer": (["send money to", "transfer funds to", "wire money to", "pay my friend"], ["john", "my sister", "another bank", "abroad"]),
        "pin": (["change my pin", "reset pin code", "forgot my pin", "new pin"], ["please", "for my card", "quickly", "now"]),
    }
    pairs = []
    for intent, (heads, tails) in topics.items():
        for h in heads:
            for t in rng.sample(tails, 3):
                pairs.append((f"{h} {t}", intent))
    oos = ["what's the weather like", "tell me a joke", "who won the football game", "recommend a movie",
           "how tall is mount everest", "play some music", "what time is it in tokyo", "translate hello to french",
           "book a table for two", "what is the capital of peru", "how do i bake bread", "sing me a song",
           "best pizza nearby", "is it going to rain", "how old is the universe", "set an alarm for 7",
           "what's your favourite colour", "who painted the mona lisa", "turn on the lights", "find me a flight"]
    pairs += [(t, "oos") for t in oos]
    return TrainingData.from_pairs(pairs)


def test_threshold_is_chosen_on_out_of_fold_scores_of_every_example_when_data_has_oos() -> None:
    data = _synthetic_oos(0)
    model = train(data)
    assert model.metadata["threshold_source"] == "out-of-fold"
    assert "out-of-fold" in model.metadata["validation"]["method"]
    assert model.metadata["validation"]["size"] == len(data.examples)
    assert 0.0 < model.threshold < 1.0
    assert model.threshold != 0.3
    assert set(model.metadata["threshold_choice"]) >= {"in_scope_accuracy", "oos_recall", "expected_oos_rate"}


def test_expected_oos_rate_from_settings_weighs_the_choice_and_the_oos_probability() -> None:
    data = _synthetic_oos(0)
    low = train(data, settings=NluSettings(expected_oos_rate=0.05))
    high = train(data, settings=NluSettings(expected_oos_rate=0.6))
    assert low.metadata["threshold_choice"]["expected_oos_rate"] == 0.05
    assert high.metadata["threshold_choice"]["expected_oos_rate"] == 0.6
    assert low.metadata["validation"]["oos_regression"]["expected_oos_rate"] == 0.05
    # the same message is more likely out of scope where more out-of-scope traffic is expected
    text = "what's the best restaurant in town"
    assert low.oos is not None and high.oos is not None
    assert _oos_confidence(low, text) < _oos_confidence(high, text)


def _oos_confidence(model: Model, text: str) -> float:
    return next(r["confidence"] for r in model.parse(text)["intent_ranking"] if r["name"] == "oos")


def test_oos_model_answers_the_same_alone_in_a_batch_and_after_loading(tmp_path: Path) -> None:
    model = train(_synthetic_oos(1))
    assert model.oos is not None and model.oos.space == "tfidf"
    texts = ["i lost my card yesterday", "how far is the moon", "", "change my pin please", "tell me a joke"]
    assert model.parse_many(texts) == [model.parse(t) for t in texts]
    loaded = load_model(model.save(tmp_path / "model"))
    assert loaded.oos is not None
    assert loaded.parse_many(texts) == model.parse_many(texts)


def test_data_without_oos_has_no_oos_regression() -> None:
    model = train(TrainingData.from_pairs([(t, i) for i, ts in KOREAN.items() for t in ts]))
    assert model.oos is None and "oos_regression" not in model.metadata["validation"]


def test_evaluate_reports_in_scope_accuracy_and_oos_recall() -> None:
    model = train(_synthetic_oos(0))
    test = TrainingData.from_pairs([
        ("i lost my card yesterday", "card_lost"), ("how much money is in my account", "balance"),
        ("transfer funds to my mother", "transfer"), ("i forgot my pin code", "pin"),
        ("what's the best restaurant in town", "oos"), ("who is the president of france", "oos"),
        ("play a song by the beatles", "oos"), ("how far is the moon", "oos"),
    ])
    report = evaluate(model, test)
    assert report["in_scope_accuracy"] >= 0.75
    assert report["oos_recall"] >= 0.5
    assert report["oos_examples"] == 4


def test_nlu_fallback_answer_counts_as_right_for_an_oos_example() -> None:
    class Always:
        def parse_many(self, texts: list[str]) -> list[dict]:  # type: ignore[type-arg]
            return [{"intent": {"name": "nlu_fallback", "confidence": 0.3}, "intent_ranking": []} for _ in texts]

    report = evaluate(Always(), TrainingData.from_pairs([("weather?", "oos"), ("balance", "balance")]))
    assert report["oos_recall"] == 1.0 and report["in_scope_accuracy"] == 0.0 and report["accuracy"] == 0.5
