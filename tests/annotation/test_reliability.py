"""Rater reliability on long-format data, CSV files and stored feedback (SQLite and
PostgreSQL), pinned to published worked examples and to simulations with known truth.

Published values used here:
* Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
  Communication, U. Pennsylvania, section C: 4 observers, 12 units, values 1-5 with
  missing ratings: alpha = 0.743 (nominal), 0.815 (ordinal), 0.849 (interval), 0.797 (ratio).
* Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychol. Bull.
  76:378, as worked on Wikipedia ("Fleiss' kappa", worked example): kappa = 0.210.
* Gwet, K. L. (2014). Handbook of Inter-Rater Reliability, 4th ed.: AC1 = 0.7754 on
  Krippendorff's 4-rater data (also the irrCAC package's documented example).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import orjson
import pytest
from sqlalchemy import select

from feedbackloop.annotation.reliability import (
    agreement_from_csv,
    agreement_summary,
    calibration_report,
    project_agreement,
)
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.errors import InvalidInput, NotFound
from feedbackloop.settings import Settings
from feedbackloop.store import Store, utcnow
from feedbackloop.store.tables import (
    annotation_links,
    assignments,
    campaign_items,
    campaigns,
    feedback,
    interactions,
)

NAN = math.nan
START = datetime(2026, 1, 5, tzinfo=UTC)

# Krippendorff (2011), section C: rows are observers A-D, columns units 1-12.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]
# Fleiss (1971) / Wikipedia: 10 subjects, 14 raters, counts per category 1-5.
FLEISS_COUNTS = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]


def long_format(matrix: Sequence[Sequence[float]]) -> tuple[list[str], list[str], list[float]]:
    units, raters, values = [], [], []
    for r, row in enumerate(matrix):
        for u, v in enumerate(row):
            units.append(f"u{u + 1}")
            raters.append("ABCDEFGHIJKLMNOP"[r])
            values.append(v)
    return units, raters, values


def fleiss_long() -> tuple[list[int], list[int], list[int]]:
    units, raters, values = [], [], []
    for u, counts in enumerate(FLEISS_COUNTS):
        labels = [c + 1 for c, n in enumerate(counts) for _ in range(n)]
        for r, label in enumerate(labels):
            units.append(u)
            raters.append(r)
            values.append(label)
    return units, raters, values


def write_csv(path: Path, rows: Sequence[Sequence[Any]], header: str = "unit,rater,value"
              ) -> Path:
    lines = [header] + [",".join("" if (isinstance(x, float) and math.isnan(x)) else str(x)
                                 for x in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ agreement_summary


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815),
                                                  ("interval", 0.849), ("ratio", 0.797)])
def test_summary_reproduces_krippendorff_2011(level: str, published: float) -> None:
    units, raters, values = long_format(KRIPPENDORFF_2011)
    summary = agreement_summary(units, raters, values, level, n_boot=200)
    assert summary["krippendorff_alpha"] == pytest.approx(published, abs=5e-4)
    assert (summary["units"], summary["raters"], summary["level"]) == (12, 4, level)
    assert summary["pairable_units"] == 11 and summary["ratings"] == 41
    lo, hi = summary["alpha_ci95"]
    assert lo < summary["krippendorff_alpha"] <= hi <= 1.0
    # ratings are missing, so Fleiss' kappa is undefined; 4 raters, so no Cohen's kappa
    assert summary["fleiss_kappa"] is None and summary["cohen_kappa"] is None
    assert any("Fleiss" in n for n in summary["notes"])
    assert any("single rating" in n for n in summary["notes"])  # unit 12
    # Gwet (2014): AC1 = 0.7754 on these data
    assert summary["gwet_ac1"] == pytest.approx(0.77544, abs=5e-5)


def test_summary_reproduces_fleiss_1971() -> None:
    units, raters, values = fleiss_long()
    summary = agreement_summary(units, raters, values, "nominal", n_boot=200)
    assert summary["fleiss_kappa"] == pytest.approx(0.210, abs=5e-4)
    assert summary["fleiss_kappa_ci95"] is not None
    assert summary["units"] == 10 and summary["raters"] == 14


def test_summary_matches_the_krippendorff_package_on_random_data() -> None:
    rng = np.random.default_rng(11)
    truth = rng.integers(1, 6, 300)
    matrix = np.clip(truth + rng.integers(-1, 2, (5, 300)), 1, 5).astype(float)
    matrix[rng.random(matrix.shape) < 0.25] = NAN
    units, raters, values = long_format(matrix.tolist())
    for level in ("nominal", "ordinal", "interval", "ratio"):
        ours = agreement_summary(units, raters, values, level, n_boot=0)
        assert ours["krippendorff_alpha"] == pytest.approx(
            krippendorff.alpha(matrix, level_of_measurement=level), abs=1e-9)
        assert ours["alpha_ci95"] is None  # n_boot=0: no interval


def test_string_labels_are_coded_for_nominal() -> None:
    units, raters, values = long_format(KRIPPENDORFF_2011)
    names = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    text = [names[int(v)] if not math.isnan(v) else "" for v in values]
    summary = agreement_summary(units, raters, text, "nominal", n_boot=0)
    assert summary["krippendorff_alpha"] == pytest.approx(0.743, abs=5e-4)
    assert summary["labels"] == ["five", "four", "one", "three", "two"]
    with pytest.raises(InvalidInput,
                       match="record 0: value 'one' is not a number; the interval level"):
        agreement_summary(units, raters, text, "interval")


def test_two_raters_get_cohen_kappa_and_the_icc() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=200)
    a, b = truth + rng.normal(0, 0.5, 200), truth + rng.normal(0, 0.5, 200)
    units = list(range(200)) * 2
    raters = ["a"] * 200 + ["b"] * 200
    summary = agreement_summary(units, raters, [*a, *b], "interval", n_boot=100)
    # continuous ratings: too many distinct values for the category statistics
    assert summary["cohen_kappa"] is None and summary["gwet_ac1"] is None
    assert any("too many to treat as categories" in n for n in summary["notes"])
    # ICC(2,1) with true variance 1 and noise 0.25 per rater: about 1 / 1.25 = 0.8
    assert summary["icc"] == pytest.approx(0.8, abs=0.06)
    assert summary["krippendorff_alpha"] == pytest.approx(summary["icc"], abs=0.02)
    ordinal = agreement_summary(units, raters, [*np.round(a), *np.round(b)], "ordinal",
                                n_boot=0)
    assert ordinal["cohen_kappa"] is not None and ordinal["cohen_kappa_weights"] == "quadratic"


def test_bad_input_gives_clear_messages() -> None:
    with pytest.raises(InvalidInput, match=r"duplicate \(unit, rater\) ratings: unit 'u1', "
                                           r"rater 'A' \(record 0 and record 2\)"):
        agreement_summary(["u1", "u2", "u1"], ["A", "A", "A"], [1, 2, 3])
    with pytest.raises(InvalidInput, match=r"1 rating outside the scale \[1, 5\]: 7.0"):
        agreement_summary(["u1", "u1"], ["A", "B"], [1.0, 7.0], "ordinal", scale=(1, 5))
    with pytest.raises(InvalidInput, match="every value is missing"):
        agreement_summary(["u1"], ["A"], [None])
    with pytest.raises(InvalidInput, match="record 1 has no rater"):
        agreement_summary(["u1", "u2"], ["A", ""], [1, 2])
    with pytest.raises(InvalidInput, match="level must be one of"):
        agreement_summary(["u1"], ["A"], [1], "circular")


def test_undefined_statistics_are_null_with_a_reason() -> None:
    single = agreement_summary(["u1", "u2", "u3"], ["A", "A", "A"], [1, 2, 1])
    assert single["krippendorff_alpha"] is None and single["alpha_ci95"] is None
    assert any("a single rater ('A')" in n for n in single["notes"])
    same = agreement_summary(["u1", "u1", "u2", "u2"], ["A", "B", "A", "B"], [3, 3, 3, 3])
    assert same["krippendorff_alpha"] is None
    assert any("all values are identical (3): alpha" in n for n in same["notes"])
    unpaired = agreement_summary(["u1", "u2", "u3"], ["A", "B", "C"], [1, 2, 1])
    assert unpaired["krippendorff_alpha"] is None and unpaired["pairable_units"] == 0
    assert any("3 units have a single rating" in n for n in unpaired["notes"])
    # nothing NaN-like survives into JSON
    for result in (single, same, unpaired):
        assert b"NaN" not in orjson.dumps(result)


# ------------------------------------------------------------------ CSV


def test_csv_krippendorff_example(tmp_path: Path) -> None:
    units, raters, values = long_format(KRIPPENDORFF_2011)
    path = write_csv(tmp_path / "k.csv", list(zip(units, raters, values, strict=True)))
    result = agreement_from_csv(path, n_boot=100)
    assert result["krippendorff_alpha"] == pytest.approx(0.743, abs=5e-4)
    assert result["units"] == 12 and result["raters"] == 4
    assert any("7 empty values treated as missing" in n for n in result["notes"])
    renamed = write_csv(tmp_path / "r.csv", list(zip(values, units, raters, strict=True)),
                        header="score,item,coder")
    again = agreement_from_csv(renamed, unit="item", rater="coder", value="score",
                               level="interval", n_boot=0)
    assert again["krippendorff_alpha"] == pytest.approx(0.849, abs=5e-4)


def test_csv_bad_input_names_lines_and_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [("u1", "A", 1), ("u2", "A", 2), ("u1", "A", 3)])
    with pytest.raises(InvalidInput, match=r"unit 'u1', rater 'A' \(line 2 and line 4\)"):
        agreement_from_csv(path)
    with pytest.raises(InvalidInput, match=r"unknown column 'item' \(--unit\): d.csv has the "
                                           "columns 'unit', 'rater', 'value'"):
        agreement_from_csv(path, unit="item")
    scaled = write_csv(tmp_path / "s.csv", [("u1", "A", 1), ("u1", "B", 6)])
    with pytest.raises(InvalidInput, match=r"outside the scale \[1, 5\]: '6' \(line 3, unit "
                                           "'u1', rater 'B'\\)"):
        agreement_from_csv(scaled, scale=(1, 5), level="ordinal")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InvalidInput, match=r"empty\.csv is empty"):
        agreement_from_csv(tmp_path / "empty.csv")
    with pytest.raises(NotFound, match="no file"):
        agreement_from_csv(tmp_path / "missing.csv")
    with pytest.raises(InvalidInput, match="the delimiter must be one character"):
        agreement_from_csv(path, delimiter=";;")
    (tmp_path / "latin.csv").write_bytes(b"unit,rater,value\nu1,\xe9,1\n")
    with pytest.raises(InvalidInput, match=r"latin\.csv is not UTF-8 text"):
        agreement_from_csv(tmp_path / "latin.csv")
    wide = tmp_path / "wide.csv"
    wide.write_text("unit,rater,value\nu1,A,1,extra\n")
    with pytest.raises(InvalidInput, match=r"line 2 of wide\.csv has more fields than the"):
        agreement_from_csv(wide)


# ------------------------------------------------------------------ stored feedback


def seed_project(store: Store, settings: Settings, signal: SignalIn,
                 ratings: Sequence[tuple[int, str, Any]], *, name: str = "rel",
                 n_items: int | None = None, versions: Sequence[str] | None = None,
                 pairs: Sequence[tuple[int, int]] | None = None,
                 source: str = "annotator") -> Project:
    """A project with interactions i0000.. and the given (item, rater, value) ratings,
    one minute apart in the order given (for pairwise signals, item indexes ``pairs``)."""
    project = create_project(store, name)
    create_signal(store, project, signal)
    count = n_items if n_items is not None else max(i for i, _, _ in ratings) + 1
    if pairs is not None:
        count = max(max(p) for p in pairs) + 1
    ing = Ingestor(store, settings, project)
    records = [{"id": f"i{i:04d}", "input": f"q{i}", "output": f"a{i}",
                "model_version": versions[i] if versions is not None else "v1",
                "timestamp": START.isoformat()} for i in range(count)]
    assert ing.interactions(records).rejected == 0
    fb = []
    for k, (item, rater, value) in enumerate(ratings):
        rec = {"id": f"f{k:06d}", "signal": signal.name, "value": value, "source": source,
               "rater_id": rater,
               "timestamp": (START + timedelta(minutes=k)).isoformat()}
        if pairs is not None:
            a, b = pairs[item]
            rec.update(interaction_id=f"i{a:04d}", interaction_id_b=f"i{b:04d}")
        else:
            rec["interaction_id"] = f"i{item:04d}"
        fb.append(rec)
    result = ing.feedback(fb)
    assert result.rejected == 0, result.errors[:3]
    return project


def add_campaign(store: Store, project: Project, signal: str, *, name: str = "c1",
                 kind: str = "standard", drift_threshold: float = 0.6,
                 gold: dict[int, Any] | None = None, feedback_ids: Sequence[str] = ()
                 ) -> int:
    """A campaign row whose items are the interactions of ``feedback_ids`` (gold where
    ``gold`` names the item index), each rating linked through a done assignment."""
    gold = gold or {}
    now = utcnow()
    with store.transaction() as conn:
        sig_id = conn.execute(select(feedback.c.signal_id).where(
            feedback.c.project_id == project.id).limit(1)).scalar_one()
        cid = conn.execute(campaigns.insert().values(
            project_id=project.id, name=name, kind=kind, status="active",
            signals=[{"signal": signal, "signal_id": sig_id, "type": "", "guideline_version": 1}],
            raters=[], budget=10, overlap=3, gold_rate=0.0, policy={"random": 1.0},
            options={}, lease_minutes=30, drift_threshold=drift_threshold, seed=0,
            created_by="", created_at=now)).inserted_primary_key[0]
        rows = conn.execute(select(feedback.c.id, feedback.c.interaction_id,
                                   feedback.c.interaction_b_id, feedback.c.rater_id,
                                   interactions.c.client_id)
                            .join(interactions, interactions.c.id == feedback.c.interaction_id)
                            .where(feedback.c.client_id.in_(list(feedback_ids)))
                            .order_by(feedback.c.id)).all()
        items: dict[tuple[int, int | None], int] = {}
        for row in rows:
            key = (row.interaction_id, row.interaction_b_id)
            if key not in items:
                index = int(row.client_id[1:])
                items[key] = conn.execute(campaign_items.insert().values(
                    campaign_id=cid, interaction_id=key[0], interaction_b_id=key[1],
                    position=len(items), policy="gold" if index in gold else "random",
                    is_gold=index in gold,
                    gold_value={signal: gold[index]} if index in gold else None,
                    n_active=0, n_done=0)).inserted_primary_key[0]
            aid = conn.execute(assignments.insert().values(
                campaign_id=cid, item_id=items[key], rater=row.rater_id, status="done",
                swapped=False, leased_at=now, expires_at=now, finished_at=now)
            ).inserted_primary_key[0]
            conn.execute(annotation_links.insert().values(
                campaign_id=cid, assignment_id=aid, feedback_id=row.id, signal_id=sig_id))
    return int(cid)


def simulate_labels(n_items: int, raters: dict[str, float], seed: int, classes: int = 3,
                    turns_random: dict[str, float] | None = None
                    ) -> tuple[list[tuple[int, str, Any]], np.ndarray]:
    """Every rater labels every item in item order; rater r is right with probability
    ``raters[r]`` (else a uniformly random other label), and from the fraction
    ``turns_random[r]`` of the items on answers uniformly at random."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, n_items)
    ratings = []
    for i in range(n_items):
        for rater, accuracy in raters.items():
            start = (turns_random or {}).get(rater)
            if start is not None and i >= start * n_items:
                value = int(rng.integers(0, classes))
            elif rng.random() < accuracy:
                value = int(truth[i])
            else:
                value = int((truth[i] + rng.integers(1, classes)) % classes)
            ratings.append((i, rater, f"c{value}"))
    return ratings, truth


CATEGORICAL = SignalIn(name="topic", type="categorical", labels=["c0", "c1", "c2"])


def test_project_agreement_flags_the_rater_who_turns_random(store: Store,
                                                           settings: Settings) -> None:
    raters = {"ann": 0.9, "bob": 0.9, "cid": 0.85, "dee": 0.9}
    ratings, _ = simulate_labels(400, raters, seed=4, turns_random={"dee": 0.5})
    project = seed_project(store, settings, CATEGORICAL, ratings)
    result = project_agreement(store, project, "topic", n_boot=100, window=50,
                               min_items=20)
    assert result["units"] == 400 and result["n_raters"] == 4 and result["level"] == "nominal"
    assert result["labels"] == ["c0", "c1", "c2"]
    assert result["drift_threshold"] == 0.6 and result["campaign"] is None
    by = {r["rater"]: r for r in result["raters"]}
    assert [r for r, x in by.items() if x["drift"]] == ["dee"]
    dee = by["dee"]
    # Known truth, by enumerating the others' labels (3 classes, errors uniform): a
    # 0.9-accurate rater against others of 0.9, 0.9, 0.85 expects 0.874; a random rater
    # expects 1/3 against any others; a steady rater with dee among the others (0.9, 0.85
    # or 0.9, 0.9, and a random one) expects 0.784 or 0.765.
    assert dee["latest"]["consensus_agreement"] == pytest.approx(1 / 3, abs=0.12)
    first_half = np.mean([w["consensus_agreement"] for w in dee["windows"][:4]])
    assert first_half == pytest.approx(0.874, abs=0.07)  # 200 items: sd 0.024
    assert len(dee["windows"]) == 8 and dee["windows"][-1]["n"] == 50
    assert dee["windows"][-1]["end"] == (START + timedelta(minutes=399 * 4 + 3)).isoformat()
    assert "below 0.6" in dee["drift_reasons"][0]
    for steady in ("ann", "bob", "cid"):
        assert by[steady]["consensus_agreement"] > 0.75
        assert all(w["consensus_agreement"] > 0.6 for w in by[steady]["windows"])
    assert 0.3 < result["krippendorff_alpha"] < 0.8 and result["alpha_ci95"] is not None


def test_project_agreement_with_a_campaign_and_gold(store: Store, settings: Settings) -> None:
    raters = {"ann": 0.95, "bob": 0.95, "cid": 0.95, "dee": 0.95}
    ratings, truth = simulate_labels(120, raters, seed=9)
    # cid's gold answers are wrong on purpose: gold accuracy exposes it
    gold = {i: f"c{int(truth[i])}" for i in range(0, 120, 2)}
    ratings = [(i, r, (f"c{(int(truth[i]) + 1) % 3}" if r == "cid" and i in gold else v))
               for i, r, v in ratings]
    project = seed_project(store, settings, CATEGORICAL, ratings)
    ids = [f"f{k:06d}" for k in range(len(ratings)) if ratings[k][0] < 100]
    add_campaign(store, project, "topic", gold=gold, drift_threshold=0.7, feedback_ids=ids)
    result = project_agreement(store, project, "topic", campaign="c1", n_boot=0,
                               window=30, min_items=10)
    assert result["campaign"] == "c1" and result["drift_threshold"] == 0.7
    assert result["units"] == 100  # only the campaign's items
    by = {r["rater"]: r for r in result["raters"]}
    assert by["cid"]["gold_n"] == 50 and by["cid"]["gold_accuracy"] == 0.0
    assert by["cid"]["drift"] and "gold accuracy" in by["cid"]["drift_reasons"][-1]
    assert by["ann"]["gold_n"] == 50 and by["ann"]["gold_accuracy"] > 0.85
    assert not by["ann"]["drift"]
    with pytest.raises(NotFound, match="no campaign 'nope'"):
        project_agreement(store, project, "topic", campaign="nope")


def test_project_agreement_on_an_ordinal_signal_and_re_annotations(store: Store,
                                                                  settings: Settings) -> None:
    ratings = [(i, r, int(v)) for i, row in enumerate(np.array(KRIPPENDORFF_2011).T)
               for r, v in zip("ABCD", row, strict=True) if not math.isnan(v)]
    ratings.append((0, "A", 5))  # A re-rates unit 1 later: the latest counts
    ratings.append((0, "A", 1))
    project = seed_project(store, settings,
                           SignalIn(name="quality", type="ordinal", scale_min=1, scale_max=5),
                           ratings)
    result = project_agreement(store, project, "quality", n_boot=0)
    assert result["level"] == "ordinal" and result["superseded"] == 2
    assert result["krippendorff_alpha"] == pytest.approx(0.815, abs=5e-4)
    assert any("replaced by the rater's latest" in n for n in result["notes"])
    interval = project_agreement(store, project, "quality", n_boot=0, level="interval")
    assert interval["krippendorff_alpha"] == pytest.approx(0.849, abs=5e-4)


def test_project_agreement_bad_input(store: Store, settings: Settings) -> None:
    project = seed_project(store, settings, CATEGORICAL, [(0, "a", "c1")])
    create_signal(store, project, SignalIn(name="notes", type="text"))
    create_signal(store, project, SignalIn(name="empty", type="binary"))
    with pytest.raises(InvalidInput, match="free text has no agreement"):
        project_agreement(store, project, "notes")
    with pytest.raises(InvalidInput, match="no ratings from annotators or experts"):
        project_agreement(store, project, "empty")
    with pytest.raises(NotFound, match="no signal 'missing'"):
        project_agreement(store, project, "missing")
    with pytest.raises(InvalidInput, match="the window must be 1-1,000,000"):
        project_agreement(store, project, "topic", window=0)
    with pytest.raises(InvalidInput, match="the drift threshold must be between 0 and 1"):
        project_agreement(store, project, "topic", drift_threshold=1.5)
    single = project_agreement(store, project, "topic")
    assert single["krippendorff_alpha"] is None and single["raters"][0]["drift"] is False


def test_calibration_report_ranks_items_by_disagreement(store: Store,
                                                        settings: Settings) -> None:
    ratings = [(0, "a", "c0"), (0, "b", "c0"), (0, "c", "c0"),  # unanimous
               (1, "a", "c0"), (1, "b", "c1"), (1, "c", "c2"),  # all differ
               (2, "a", "c1"), (2, "b", "c1"), (2, "c", "c2")]  # two against one
    project = seed_project(store, settings, CATEGORICAL, ratings)
    add_campaign(store, project, "topic", name="cal", kind="calibration",
                 feedback_ids=[f"f{k:06d}" for k in range(9)])
    report = calibration_report(store, project, "cal", top=2)
    assert [e["interaction"] for e in report] == ["i0001", "i0002"]
    assert report[0]["disagreement"] == 1.0
    assert report[1]["disagreement"] == pytest.approx(4 / 6)  # 4 of 6 ordered pairs differ
    assert report[0]["item"] == 1 and {r["rater"] for r in report[0]["ratings"]} == \
        {"a", "b", "c"}
    full = project_agreement(store, project, "topic", campaign="cal", n_boot=0)
    assert [e["interaction"] for e in full["calibration"]] == ["i0001", "i0002", "i0000"]
    assert full["calibration"][2]["disagreement"] == 0.0


def test_ratio_needs_non_negative_values_and_half_steps_fall_back() -> None:
    with pytest.raises(InvalidInput, match="record 1: value -2 is negative; the ratio level"):
        agreement_summary(["u1", "u1"], ["A", "B"], [1, -2], "ratio")
    # half-point ratings on a 1-5 ordinal scale: AC2 and Cohen use the observed values
    summary = agreement_summary(["u1", "u1", "u2", "u2", "u3", "u3"],
                                ["A", "B"] * 3, [1, 1.5, 3, 3, 5, 4.5], "ordinal",
                                scale=(1, 5), n_boot=0)
    assert summary["gwet_ac2"] is not None and summary["cohen_kappa"] is not None
