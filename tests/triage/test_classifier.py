"""The pure parts: the route classifier's calibration on a simulation with known truth,
rule matching, and the priority formula."""

from __future__ import annotations

import numpy as np
import pytest

from feedbackloop.stats.estimate import NotEstimable
from feedbackloop.triage.classifier import RouteClassifier
from feedbackloop.triage.priority import expected_benefit, priority_score
from feedbackloop.triage.rules import check_conditions, matches

WORDS = {"latency": ["slow", "waited", "timeout", "loading", "forever"],
         "factuality": ["wrong", "incorrect", "false", "outdated", "fact"],
         "ux": ["button", "confusing", "layout", "menu", "click"]}
SHARED = ["answer", "the", "app", "bad", "again", "really", "today", "help"]


def _texts(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    """Each text: 1 word of its route's vocabulary (a third of the time one of another
    route's instead) among 4 shared words, so the route is uncertain by design."""
    routes = list(WORDS)
    texts, truth = [], []
    for _ in range(n):
        route = routes[rng.integers(3)]
        cue_from = route if rng.random() > 1 / 3 else routes[rng.integers(3)]
        words = [str(w) for w in rng.choice(SHARED, 4)] + [str(rng.choice(WORDS[cue_from]))]
        rng.shuffle(words)
        texts.append(" ".join(words))
        truth.append(route)
    return texts, truth


def test_calibrated_confidence_matches_accuracy_on_a_simulation() -> None:
    rng = np.random.default_rng(7)
    train, train_y = _texts(rng, 600)
    test, test_y = _texts(rng, 1500)
    model = RouteClassifier().fit(train, train_y)
    assert model.calibration_.startswith("isotonic")
    predicted = model.predict(test)
    conf = np.array([c for _, c in predicted])
    right = np.array([r == y for (r, _), y in zip(predicted, test_y, strict=True)])
    # Truth: the cue names the right route 2/3 + 1/9 of the time, so no classifier beats
    # 7/9 (Bayes), and reading the cue gets it.
    assert right.mean() == pytest.approx(7 / 9, abs=0.03)
    # Calibrated: the mean confidence is close to the accuracy.
    assert conf.mean() == pytest.approx(right.mean(), abs=0.05)
    high = conf >= np.median(conf)
    assert right[high].mean() > right[~high].mean()


def test_the_classifier_needs_two_routes_and_four_items() -> None:
    with pytest.raises(NotEstimable):
        RouteClassifier().fit(["a", "b", "c", "d"], ["ux"] * 4)
    with pytest.raises(NotEstimable):
        RouteClassifier().fit(["a", "b"], ["ux", "latency"])
    small = RouteClassifier().fit(["slow", "slower", "button", "buttons"],
                                  ["latency", "latency", "ux", "ux"])
    assert small.calibration_.startswith("none")
    assert small.predict([]) == []


def test_rules_compare_json_values_by_type_and_search_texts() -> None:
    rule = check_conditions({"signal": "thumbs", "value": False, "text": "e-?mail",
                             "attributes": {"plan": ["pro", "team"]}})
    item = {"signal": "thumbs", "value": False, "comment": "my EMAIL leaked",
            "attributes": {"plan": "pro"}}
    assert matches(rule, item)
    assert not matches(rule, {**item, "value": 0})  # false is not 0
    assert not matches(rule, {**item, "attributes": {"plan": "free"}})
    assert not matches(rule, {**item, "comment": None})
    assert matches(check_conditions({"value_max": 2}), {"value_num": 2.0})
    assert not matches(check_conditions({"value_max": 2}), {"value_num": None})
    only_output = check_conditions({"text": "refund", "text_fields": ["output"]})
    assert not matches(only_output, {"comment": "refund"})
    assert matches(only_output, {"output": "Refund in 3 days"})


def test_priority_and_benefit_by_hand() -> None:
    # 40 users, severity 3, confidence 0.8, 4 person-days, risk 5 (halves it): 12.
    assert priority_score(reach=40, severity=3, effort=4, risk=5, confidence=0.8) == \
        pytest.approx(12.0)
    b = expected_benefit(0, 0, 0.5)
    assert b["value"] is None and "no negative feedback" in b["reason"]
    b = expected_benefit(5, 50, None)
    assert b["value"] is None and b["share"]["value"] == 0.1
