"""``feedbackloop agreement`` (a CSV file without a project, and stored feedback) and
``feedbackloop aggregate``, through the real command tree on SQLite and PostgreSQL.

The CSV file is Krippendorff's (2011) worked example ("Computing Krippendorff's
Alpha-Reliability", section C: 4 observers, 12 units, missing ratings), whose published
nominal alpha is 0.743 and interval alpha 0.849.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import orjson
import pytest

from feedbackloop.capture.schema import SignalIn
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from ..annotation.test_reliability import (
    CATEGORICAL,
    KRIPPENDORFF_2011,
    add_campaign,
    long_format,
    seed_project,
    simulate_labels,
    write_csv,
)
from .test_cli import Cli


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path)


@pytest.fixture
def kcsv(tmp_path: Path) -> Path:
    units, raters, values = long_format(KRIPPENDORFF_2011)
    return write_csv(tmp_path / "krippendorff.csv", list(zip(units, raters, values,
                                                             strict=True)))


def test_agreement_on_a_csv_file(cli: Cli, kcsv: Path) -> None:
    result = cli.json("agreement", str(kcsv), "--bootstrap", "200")
    # the keys the issue makes binding
    for key in ("units", "raters", "level", "krippendorff_alpha", "alpha_ci95",
                "fleiss_kappa", "gwet_ac1", "cohen_kappa"):
        assert key in result
    assert (result["units"], result["raters"], result["level"]) == (12, 4, "nominal")
    assert result["krippendorff_alpha"] == pytest.approx(0.743, abs=5e-4)
    lo, hi = result["alpha_ci95"]
    assert lo < 0.743 < hi
    assert result["fleiss_kappa"] is None and result["cohen_kappa"] is None  # missing; 4 raters
    assert result["gwet_ac1"] == pytest.approx(0.7754, abs=5e-4)  # Gwet (2014)
    interval = cli.json("agreement", str(kcsv), "--level", "interval", "--bootstrap", "0")
    assert interval["krippendorff_alpha"] == pytest.approx(0.849, abs=5e-4)
    assert interval["alpha_ci95"] is None
    text = cli("agreement", str(kcsv)).stdout
    assert "Krippendorff's alpha" in text and "0.743" in text
    assert "1 unit has a single rating" in text


def test_agreement_csv_options_and_bad_input(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "coders.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["item", "coder", "score"])
        units, raters, values = long_format(KRIPPENDORFF_2011)
        for u, r, v in zip(units, raters, values, strict=True):
            writer.writerow([u, r, "" if math.isnan(v) else int(v)])
    result = cli.json("agreement", str(path), "--unit", "item", "--rater", "coder",
                      "--value", "score", "--delimiter", ";", "--level", "ordinal",
                      "--scale", "1", "5", "--bootstrap", "0")
    assert result["krippendorff_alpha"] == pytest.approx(0.815, abs=5e-4)
    assert result["columns"] == {"unit": "item", "rater": "coder", "value": "score"}

    bad = cli("agreement", str(path), "--delimiter", ";", code=2)
    assert "unknown column 'unit' (--unit): coders.csv has the columns 'item', 'coder', " \
           "'score'" in bad.stderr
    bad = cli("agreement", str(path), "--unit", "item", "--rater", "coder", "--value",
              "score", "--delimiter", ";", "--scale", "1", "4", code=2)
    assert "3 ratings outside the scale [1, 4]" in bad.stderr and "line" in bad.stderr
    dup = write_csv(tmp_path / "dup.csv", [("u1", "A", 1), ("u1", "B", 1), ("u1", "A", 2)])
    bad = cli("agreement", str(dup), code=2)
    assert "duplicate (unit, rater) ratings: unit 'u1', rater 'A' (line 2 and line 4)" \
        in bad.stderr
    same = write_csv(tmp_path / "same.csv", [("u1", "A", 2), ("u1", "B", 2), ("u2", "A", 2),
                                             ("u2", "B", 2)])
    result = cli.json("agreement", str(same))
    assert result["krippendorff_alpha"] is None and result["alpha_ci95"] is None
    assert any("alpha is undefined" in n for n in result["notes"])
    assert "NaN" not in cli("agreement", str(same), "--json").stdout
    assert "n/a" in cli("agreement", str(same)).stdout
    one = write_csv(tmp_path / "one.csv", [("u1", "A", 1), ("u2", "A", 2)])
    assert any("a single rater" in n for n in cli.json("agreement", str(one))["notes"])
    assert "give a CSV FILE or --project" in cli("agreement", code=2).stderr
    assert "no file" in cli("agreement", str(tmp_path / "nope.csv"), code=2).stderr
    assert "--project needs --signal" in cli("agreement", "--project", "x", code=2).stderr


def test_agreement_on_stored_feedback(cli: Cli, store: Store, settings: Settings) -> None:
    raters = {"ann": 0.9, "bob": 0.9, "cid": 0.9, "dee": 0.9}
    ratings, _ = simulate_labels(300, raters, seed=6, turns_random={"dee": 0.5})
    project = seed_project(store, settings, CATEGORICAL, ratings)
    result = cli.json("agreement", "--project", "rel", "--signal", "topic", "--bootstrap",
                      "100")
    assert result["signal"] == "topic" and result["units"] == 300
    assert result["n_raters"] == 4 and result["krippendorff_alpha"] is not None
    assert [r["rater"] for r in result["raters"] if r["drift"]] == ["dee"]
    text = cli("agreement", "-p", "rel", "-s", "topic", "--bootstrap", "0").stdout
    assert "DRIFT" in text and "dee" in text and "below 0.6" in text

    ids = [f"f{k:06d}" for k in range(len(ratings)) if ratings[k][0] < 50]
    add_campaign(store, project, "topic", name="round-1", feedback_ids=ids)
    scoped = cli.json("agreement", "-p", "rel", "-s", "topic", "--campaign", "round-1",
                      "--bootstrap", "0")
    assert scoped["campaign"] == "round-1" and scoped["units"] == 50
    bad = cli("agreement", "-p", "rel", "-s", "topic", "--campaign", "nope", code=2)
    assert "no campaign 'nope' in project 'rel'" in bad.stderr
    bad = cli("agreement", "-p", "rel", "-s", "missing", code=2)
    assert "no signal 'missing'" in bad.stderr


def test_aggregate_command(cli: Cli, store: Store, settings: Settings,
                           tmp_path: Path) -> None:
    raters = {"good1": 0.85, "good2": 0.85, "spam1": 1 / 3, "spam2": 1 / 3, "spam3": 1 / 3}
    ratings, _ = simulate_labels(200, raters, seed=3)
    seed_project(store, settings, CATEGORICAL, ratings)
    out = tmp_path / "labels.csv"
    result = cli.json("aggregate", "-p", "rel", "-s", "topic", "--method", "dawid-skene",
                      "--output", str(out))
    assert result["id"] == 1 and result["n_items"] == 200 and result["method"] == "dawid-skene"
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 200 and rows[0]["interaction"] == result["labels"][0]["interaction"]
    assert float(rows[0]["confidence"]) == pytest.approx(result["labels"][0]["confidence"])
    text = cli("aggregate", "-p", "rel", "-s", "topic", "-m", "majority").stdout
    assert "Aggregation 2 of topic by majority: 200 items from 1,000 ratings by 5 raters" \
        in text
    jsonl = tmp_path / "labels.jsonl"
    cli("aggregate", "-p", "rel", "-s", "topic", "-m", "dawid-skene", "-o", str(jsonl))
    first = orjson.loads(jsonl.read_text().splitlines()[0])
    assert set(first) == {"interaction", "interaction_b", "value", "confidence", "se",
                          "n_ratings"}
    bad = cli("aggregate", "-p", "rel", "-s", "topic", "-m", "mean", code=2)
    assert "method 'mean' aggregates binary, ordinal, numeric signals" in bad.stderr
    bad = cli("aggregate", "-p", "rel", "-s", "topic", "-m", "median", code=2)
    assert "median" in bad.stderr
    bad = cli("aggregate", "-p", "rel", "-s", "topic", "-m", "majority", "-o",
              str(tmp_path / "no" / "such.csv"), code=2)
    assert "no directory" in bad.stderr
    assert cli.json("aggregate", "-p", "rel", "-s", "topic", "-m", "majority")["id"] == 4
    bad = cli("agreement", "-p", "rel", "-s", "topic", "--window", "0", code=2)
    assert "the window must be 1-1,000,000 annotations" in bad.stderr


def test_aggregate_bradley_terry_prints_the_ranking(cli: Cli, store: Store,
                                                   settings: Settings) -> None:
    versions = ["old", "new"] * 30
    pairs = [(2 * k, 2 * k + 1) for k in range(30)]
    ratings = [(k, "r1", "b" if k % 5 else "a") for k in range(30)]  # new wins 24 of 30
    seed_project(store, settings, SignalIn(name="pref", type="pairwise"), ratings,
                 versions=versions, pairs=pairs)
    result = cli.json("aggregate", "-p", "rel", "-s", "pref", "-m", "bradley-terry")
    ranking = result["summary"]["ranking"]
    assert [r["model_version"] for r in ranking] == ["new", "old"]
    assert (ranking[0]["wins"], ranking[0]["losses"]) == (24, 6)
    # two items, 24 of 30: the score difference is about log(24/6) = 1.386
    assert ranking[0]["score"] - ranking[1]["score"] == pytest.approx(math.log(4), abs=0.01)
    text = cli("aggregate", "-p", "rel", "-s", "pref", "-m", "bradley-terry").stdout
    assert "new" in text and "+0.69" in text


def test_choices_offered_are_the_domain_ones() -> None:
    import typing

    from feedbackloop.annotation.aggregate import METHODS
    from feedbackloop.annotation.reliability import LEVELS
    from feedbackloop.cli import agreement

    assert typing.get_args(agreement.LevelName) == LEVELS
    assert typing.get_args(agreement.MethodName) == METHODS
