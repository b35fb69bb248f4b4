"""Ticket triage: classifier on a held-out split, persistence, corrections, priority."""

from __future__ import annotations

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.triage.evaluate import default_tickets, evaluate_examples, evaluate_triage, format_triage, held_out_split
from zhiban.triage.model import DOMAINS, TriageExample, TriageModel, parse_examples, suggest_priority


@pytest.fixture(scope="module")
def examples() -> list[TriageExample]:
    return parse_examples(default_tickets())


@pytest.fixture(scope="module")
def split(examples: list[TriageExample]) -> tuple[list[TriageExample], list[TriageExample]]:
    return held_out_split(examples)


@pytest.fixture(scope="module")
def model(split: tuple[list[TriageExample], list[TriageExample]]) -> TriageModel:
    return TriageModel.train(split[0])


def test_labelled_set_covers_every_domain_in_both_languages(examples: list[TriageExample]) -> None:
    assert len(examples) >= 180
    for domain in DOMAINS:
        langs = {e.lang for e in examples if e.domain == domain}
        assert langs == {"zh", "en"}, domain


def test_split_is_stratified_disjoint_and_repeatable(
    examples: list[TriageExample], split: tuple[list[TriageExample], list[TriageExample]]
) -> None:
    train, test = split
    assert len(train) + len(test) == len(examples)
    assert not set(map(id, train)) & set(map(id, test))
    assert {e.domain for e in test} == set(DOMAINS)
    assert held_out_split(examples)[1] == test


def test_held_out_accuracy_meets_target(
    model: TriageModel, split: tuple[list[TriageExample], list[TriageExample]]
) -> None:
    result = evaluate_examples(model, split[1])
    assert result.accuracy >= 0.85, format_triage(result)
    assert sum(result.confusion.values()) == result.n == len(split[1])


def test_prediction_is_a_calibrated_ranking(model: TriageModel) -> None:
    prediction = model.predict("token 过期", "用户通话中报错 109，token expired")
    assert prediction.domain == "auth_token"
    assert prediction.ranked[0][0] == prediction.domain
    assert {d for d, _ in prediction.ranked} == set(DOMAINS)
    assert sum(p for _, p in prediction.ranked) == pytest.approx(1.0)
    assert prediction.confidence == max(p for _, p in prediction.ranked)


def test_save_and_load_give_identical_predictions(model: TriageModel) -> None:
    restored = TriageModel.from_bytes(model.to_bytes())
    for subject, body in [("黑屏", "远端画面黑屏"), ("invoice", "please send the VAT invoice")]:
        assert restored.predict(subject, body) == model.predict(subject, body)
    with pytest.raises(InvalidInput):
        TriageModel.from_bytes(b"not a model")


def test_corrections_become_training_data(model: TriageModel) -> None:
    ticket = ("quokka widget", "the quokka widget misbehaves again")
    corrections = [TriageExample(f"quokka widget {i}", "quokka widget misbehaves", "billing_account") for i in range(4)]
    corrected = model.with_corrections(corrections)
    assert len(corrected.examples) == len(model.examples) + 4
    assert corrected.predict(*ticket).domain == "billing_account"


def test_training_needs_enough_examples_per_domain() -> None:
    with pytest.raises(InvalidInput):
        TriageModel.train([TriageExample("a", "b", "audio"), TriageExample("c", "d", "video")])
    with pytest.raises(InvalidInput):
        TriageExample("a", "b", "weather")


def test_evaluate_triage_ends_with_summary_line(model: TriageModel) -> None:
    lines = ['{"subject": "回声", "body": "对方听到自己的回声", "domain": "audio", "lang": "zh"}']
    text = format_triage(evaluate_triage(model, lines))
    assert text.splitlines()[-1] in ("triage accuracy=1.000 n=1", "triage accuracy=0.000 n=1")


@pytest.mark.parametrize(
    ("text", "plan", "incident", "expected"),
    [
        ("线上大面积卡顿，紧急！", "standard", False, "P1"),
        ("Production is down for all users", "enterprise", False, "P1"),
        ("Production is down for all users", "free", False, "P2"),  # free tiers have no P1
        ("App crashes on launch after upgrade", "standard", False, "P2"),
        ("Remote video looks a bit blurry", "standard", False, "P3"),
        ("How do I get the volume indication?", "standard", False, "P4"),
        ("请开3月份的发票", "standard", False, "P4"),
        ("Remote video looks a bit blurry", "enterprise", True, "P1"),
        ("Remote video looks a bit blurry", "standard", True, "P2"),
    ],
)
def test_suggest_priority(text: str, plan: str, incident: bool, expected: str) -> None:
    assert suggest_priority(text, plan, incident) == expected
