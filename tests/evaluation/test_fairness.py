"""The fairness service on SQLite and PostgreSQL: a simulated project with one cohort that
regressed under the candidate version (known truth), the gate checks G3 calls, the full
report and its bad inputs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fairlearn.metrics import demographic_parity_ratio, equalized_odds_ratio

from feedbackloop.errors import InvalidInput, NotFound
from feedbackloop.evaluation.fairness import (
    cohort_regressions,
    fairness_check,
    fairness_report,
)
from feedbackloop.store import Store

from .fairness_simulation import (
    APPROVE,
    APPROVE_V2_DE,
    GIVING,
    SHARES,
    FairnessSim,
    shared_simulation,
)


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           pg_template: str | None) -> Iterator[tuple[Store, FairnessSim]]:
    """One simulated project per database for the whole module: the tests only read it."""
    for _url, store, sim in shared_simulation(request.param,
                                              tmp_path_factory.mktemp("fairness"),
                                              pg_template):
        yield store, sim


@pytest.fixture
def store(shared: tuple[Store, FairnessSim]) -> Store:
    return shared[0]


@pytest.fixture
def sim(shared: tuple[Store, FairnessSim]) -> FairnessSim:
    return shared[1]


def _inside(ci: list[float], truth: float) -> bool:
    return ci[0] <= truth <= ci[1]


def test_cohort_regressions_find_the_cohort_that_regressed(store: Store,
                                                           sim: FairnessSim) -> None:
    out = cohort_regressions(store, "fair", attribute="locale", signal="thumbs",
                             baseline_version="v1", candidate_version="v2", tolerance=0.05)
    assert set(out) >= {"attribute", "cohorts", "passed", "method"}
    assert out["attribute"] == "locale" and out["kind"] == "rate"
    rows = {c["cohort"]: c for c in out["cohorts"]}
    assert set(rows) == {"de", "en", "fr"}
    for c in rows.values():
        assert set(c) >= {"cohort", "baseline", "candidate", "difference", "ci95",
                          "p_value", "adjusted_p_value", "regressed"}
        assert c["adjusted_p_value"] >= c["p_value"]
    de = rows["de"]
    assert de["regressed"] is True and out["regressed"] == ["de"]
    assert _inside(de["ci95"], APPROVE_V2_DE - APPROVE)
    assert de["difference"] == pytest.approx(de["candidate"]["value"]
                                             - de["baseline"]["value"])
    rated = sim.rated & (sim.locale == "de")
    assert de["baseline"]["n"] == int((rated & (sim.version == "v1")).sum())
    assert not rows["en"]["regressed"] and not rows["fr"]["regressed"]
    assert out["passed"] is False
    assert "Holm" in out["method"] and "Newcombe" in out["method"]
    assert out["missing_attribute"] == int((sim.rated & (sim.locale == "")).sum())

    # a tolerance wider than the drop: nothing is proven beyond it
    wide = cohort_regressions(store, "fair", attribute="locale", signal="thumbs",
                              baseline_version="v1", candidate_version="v2", tolerance=0.4)
    assert wide["passed"] is True and wide["regressed"] == []
    # the reverse direction is an improvement, not a regression
    back = cohort_regressions(store, "fair", attribute="locale", signal="thumbs",
                              baseline_version="v2", candidate_version="v1", tolerance=0.05)
    assert back["passed"] is True


def test_cohort_regressions_on_an_ordinal_signal_compare_means(store: Store,
                                                                sim: FairnessSim) -> None:
    out = cohort_regressions(store, "fair", attribute="locale", signal="rating",
                             baseline_version="v1", candidate_version="v2", tolerance=0.2)
    assert out["kind"] == "mean" and "Welch" in out["method"]
    rows = {c["cohort"]: c for c in out["cohorts"]}
    assert rows["de"]["regressed"] and not rows["en"]["regressed"]
    assert rows["de"]["baseline"]["method"] == "t"


def test_cohort_regressions_without_data_fail_closed(store: Store, sim: FairnessSim) -> None:
    out = cohort_regressions(store, "fair", attribute="locale", signal="thumbs",
                             baseline_version="v1", candidate_version="v9", tolerance=0.05)
    assert out["passed"] is False and "cannot be ruled out" in out["reason"]
    assert all(c["p_value"] is None and c["reason"] for c in out["cohorts"])


def test_fairness_check_applies_the_four_fifths_rule(store: Store, sim: FairnessSim) -> None:
    bad = fairness_check(store, "fair", attribute="locale", signal="thumbs", version="v2")
    assert bad["passed"] is False
    (rule,) = bad["criteria"]
    assert rule["name"] == "four_fifths" and rule["passed"] is False
    rows = {r["cohort"]: r for r in rule["evidence"]["rows"]}
    assert rows["de"]["below_threshold"] is True
    assert _inside(rows["de"]["ratio"]["ci95"], APPROVE_V2_DE / APPROVE)
    assert rule["value"] == pytest.approx(rows["de"]["ratio"]["value"])
    good = fairness_check(store, "fair", attribute="locale", signal="thumbs", version="v1")
    assert good["passed"] is True and good["criteria"][0]["passed"] is True
    assert "four-fifths" in good["method"]["impact_ratio"]
    # a laxer threshold lets v2 pass
    lax = fairness_check(store, "fair", attribute="locale", signal="thumbs", version="v2",
                         min_ratio=0.6)
    assert lax["passed"] is True


def test_fairness_check_with_a_classifier_matches_fairlearn(store: Store,
                                                             sim: FairnessSim) -> None:
    out = fairness_check(store, "fair", attribute="locale", signal="thumbs",
                         prediction="judge")
    names = [c["name"] for c in out["criteria"]]
    assert names == ["four_fifths", "demographic_parity_ratio", "equalized_odds_ratio"]
    keep = sim.rated & (sim.locale != "")
    y, p, g = sim.approved[keep], sim.judge[keep], sim.locale[keep]
    crit = {c["name"]: c for c in out["criteria"]}
    assert crit["demographic_parity_ratio"]["value"] == pytest.approx(
        demographic_parity_ratio(y, p, sensitive_features=g))
    eo = equalized_odds_ratio(y, p, sensitive_features=g)
    assert crit["equalized_odds_ratio"]["value"] == pytest.approx(eo)
    # the judge is much worse in fr, so its false-positive rate there breaks equalised odds
    assert eo < 0.8 and crit["equalized_odds_ratio"]["passed"] is False
    assert out["passed"] is False
    assert crit["equalized_odds_ratio"]["ci95"][0] <= eo <= crit["equalized_odds_ratio"][
        "ci95"][1]


def test_small_cohorts_are_shown_but_not_judged(store: Store, sim: FairnessSim) -> None:
    out = fairness_check(store, "fair", attribute="locale", signal="thumbs", version="v2",
                         min_cohort_size=100_000)
    rule = out["criteria"][0]
    assert rule["passed"] is None and out["passed"] is False
    assert "fewer than two cohorts" in rule["reason"]
    assert sorted(rule["evidence"]["not_judged"]) == ["de", "en", "fr"]


def test_fairness_report_has_every_part(store: Store, sim: FairnessSim) -> None:
    rep = fairness_report(store, "fair", attribute="locale", signal="thumbs")
    assert rep["kind"] == "rate" and rep["signal_type"] == "binary"
    cohorts = {c["cohort"]: c for c in rep["cohorts"]}
    assert _inside(cohorts["en"]["ci95"], APPROVE)
    gaps = {g["cohort"]: g for g in rep["gaps"]}
    assert gaps["de"]["flagged"] and gaps["de"]["difference"]["value"] < 0
    assert all(g["adjusted_p_value"] is not None for g in gaps.values())
    # representation: de gives feedback half as often as the others
    repn = {c["cohort"]: c for c in rep["representation"]["cohorts"]}
    total = sum(SHARES[c] * GIVING[c] for c in SHARES)
    for c in SHARES:
        truth = SHARES[c] * GIVING[c] / total / SHARES[c]
        assert _inside(repn[c]["ratio"]["ci95"], truth), c
    assert repn["de"]["ratio"]["value"] < 0.75
    assert rep["representation"]["test"]["p_value"] < 1e-6
    assert rep["classifier"] is None
    ordinal = fairness_report(store, "fair", attribute="locale", signal="rating",
                              version="v2")
    assert ordinal["kind"] == "mean" and ordinal["approval_rates"]
    assert ordinal["impact_ratios"]["available"]


def test_attribute_values_read_the_same_on_both_databases(store: Store,
                                                          sim: FairnessSim) -> None:
    tiers = fairness_report(store, "fair", attribute="tier", signal="thumbs")
    assert [c["cohort"] for c in tiers["cohorts"]] == ["0", "1", "2"]
    beta = fairness_report(store, "fair", attribute="beta", signal="thumbs")
    assert [c["cohort"] for c in beta["cohorts"]] == ["false", "true"]
    none = fairness_report(store, "fair", attribute="nothing", signal="thumbs")
    assert none["cohorts"] == [] and none["missing_attribute"] == int(sim.rated.sum())
    assert none["impact_ratios"]["passed"] is None


@pytest.mark.parametrize(("kwargs", "exc", "field"), [
    ({"signal": "nope"}, NotFound, "signal"),
    ({"signal": "topic"}, InvalidInput, "signal"),
    ({"attribute": "a'b"}, InvalidInput, "attribute"),
    ({"attribute": ""}, InvalidInput, "attribute"),
    ({"attribute": "id"}, InvalidInput, "attribute"),
    ({"min_ratio": 0}, InvalidInput, "min_ratio"),
    ({"min_ratio": 1.5}, InvalidInput, "min_ratio"),
    ({"min_ratio": float("nan")}, InvalidInput, "min_ratio"),
    ({"version": "x" * 201}, InvalidInput, "version"),
    ({"prediction": "thumbs"}, InvalidInput, "prediction"),
    ({"prediction": "nope"}, NotFound, "prediction"),
])
def test_fairness_check_rejects_bad_input(store: Store, sim: FairnessSim, kwargs: dict,
                                          exc: type, field: str) -> None:
    args = {"attribute": "locale", "signal": "thumbs", **kwargs}
    with pytest.raises(exc) as info:
        fairness_check(store, "fair", **args)
    assert info.value.details.get("field") == field


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"tolerance": -0.1}, "tolerance"),
    ({"tolerance": float("inf")}, "tolerance"),
    ({"candidate_version": "v1"}, "candidate_version"),
    ({"baseline_version": ""}, "baseline_version"),
    ({"alpha": 1.0}, "alpha"),
])
def test_cohort_regressions_rejects_bad_input(store: Store, sim: FairnessSim, kwargs: dict,
                                              field: str) -> None:
    args = {"attribute": "locale", "signal": "thumbs", "baseline_version": "v1",
            "candidate_version": "v2", "tolerance": 0.05, **kwargs}
    with pytest.raises(InvalidInput) as info:
        cohort_regressions(store, "fair", **args)
    assert info.value.details.get("field") == field


def test_unknown_project(store: Store) -> None:
    with pytest.raises(NotFound) as info:
        fairness_check(store, "nope", attribute="locale", signal="thumbs")
    assert info.value.details.get("field") == "project"
