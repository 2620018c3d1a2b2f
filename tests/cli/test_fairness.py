"""``feedbackloop fairness`` on a project (SQLite and PostgreSQL) and on CSV files, with the
Uniform Guidelines' worked example as a file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..evaluation.fairness_simulation import shared_simulation
from .test_cli import Cli


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               pg_template: str | None) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp("fairness-cli")
    for url, _store, _sim in shared_simulation(request.param, tmp, pg_template):
        yield Cli(url, tmp)


def test_report_on_a_project(shared_cli: Cli) -> None:
    rep = shared_cli.json("fairness", "-p", "fair", "-a", "locale", "-s", "thumbs",
                          "--version", "v2", "--metric", "judge")
    assert rep["project"] == "fair" and rep["version"] == "v2"
    assert [c["cohort"] for c in rep["cohorts"]] == ["de", "en", "fr"]
    assert rep["check"]["passed"] is False
    rows = {r["cohort"]: r for r in rep["impact_ratios"]["rows"]}
    assert rows["de"]["below_threshold"] is True
    assert rep["classifier"]["prediction"] == "judge"
    assert rep["representation"]["cohorts"]

    text = shared_cli("fairness", "-p", "fair", "-a", "locale", "-s", "thumbs",
                      "--version", "v2").stdout
    assert "Fairness of thumbs over locale in fair, version v2" in text
    assert "below" in text and "Fairness check: FAILED" in text
    assert "four_fifths: fail" in text
    shared_cli("fairness", "-p", "fair", "-a", "locale", "-s", "thumbs", "--version", "v2",
               "--check", code=1)
    ok = shared_cli("fairness", "-p", "fair", "-a", "locale", "-s", "thumbs", "--version",
                    "v1", "--check").stdout
    assert "Fairness check: PASSED" in ok


def test_cohort_regressions_from_the_command_line(shared_cli: Cli) -> None:
    res = shared_cli.json("fairness", "-p", "fair", "-a", "locale", "-s", "thumbs",
                          "--baseline", "v1", "--version", "v2", "--tolerance", "0.05")
    assert res["regressed"] == ["de"] and res["passed"] is False
    text = shared_cli("fairness", "-p", "fair", "-a", "locale", "-s", "thumbs",
                      "--baseline", "v1", "--version", "v2", "--tolerance", "0.05",
                      "--check", code=1).stdout
    assert "Cohort regressions: FAILED" in text and "Holm" in text


def test_bad_input_exits_2(shared_cli: Cli, tmp_path: Path) -> None:
    none = shared_cli("fairness", "-a", "locale", code=2)
    assert "--project or a --file" in none.stderr
    many = shared_cli("fairness", "-p", "fair", "-a", "locale", code=2)
    assert "name the --signal" in many.stderr and "thumbs" in many.stderr
    shared_cli("fairness", "-p", "fair", "-a", "locale", "-s", "nope", code=2)
    alone = shared_cli("fairness", "-p", "fair", "-a", "locale", "-s", "thumbs",
                       "--baseline", "v1", code=2)
    assert "--version" in alone.stderr
    shared_cli("fairness", "-p", "fair", "-a", "loc'ale", "-s", "thumbs", code=2)
    shared_cli("fairness", "-p", "fair", "-a", "locale", "-s", "thumbs", "--min-ratio",
               "2", code=2)


@pytest.fixture
def file_cli(tmp_path: Path) -> Cli:
    """A CSV file needs no database (the command does not open one)."""
    return Cli(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path)


# The worked example of the Uniform Guidelines' Questions and Answers (1979), Q&A 12:
# hiring rates 60% (whites), 45% (American Indians), 48% (Hispanics), 51% (Blacks) give
# impact ratios 75%, 80%, 85%; adverse impact is indicated for American Indians only.
def test_csv_file_reproduces_the_uniform_guidelines_example(file_cli: Cli,
                                                            tmp_path: Path) -> None:
    lines = ["group,hired"]
    for group, hired in (("white", 60), ("american_indian", 45), ("hispanic", 48),
                         ("black", 51)):
        lines += [f"{group},{1 if k < hired else 0}" for k in range(100)]
    file = tmp_path / "applicants.csv"
    file.write_text("\n".join(lines) + "\n")
    rep = file_cli.json("fairness", "--file", str(file), "-a", "group", "-s", "hired")
    rows = {r["cohort"]: r for r in rep["impact_ratios"]["rows"]}
    assert rows["american_indian"]["ratio"]["value"] == pytest.approx(0.75)
    assert rows["hispanic"]["ratio"]["value"] == pytest.approx(0.80)
    assert rows["black"]["ratio"]["value"] == pytest.approx(0.85)
    assert [r["cohort"] for r in rep["impact_ratios"]["rows"] if r["below_threshold"]] \
        == ["american_indian"]
    assert rep["check"]["passed"] is False and rep["representation"] is None
    text = file_cli("fairness", "--file", str(file), "-a", "group", "-s", "hired",
                      "--check", code=1).stdout
    assert "american_indian" in text and "below" in text


def test_csv_file_with_predictions_and_a_threshold(file_cli: Cli, tmp_path: Path) -> None:
    file = tmp_path / "scores.csv"
    rows = ["team;score;flag"]
    for k in range(60):
        rows.append(f"a;{3 + k % 3};{'true' if k % 2 else 'false'}")
        rows.append(f"b;{2 + k % 3};{'yes' if k % 3 else 'no'}")
    rows.append(";4;true")  # no cohort: left out
    file.write_text("\n".join(rows) + "\n")
    rep = file_cli.json("fairness", "--file", str(file), "-a", "team", "-s", "score",
                          "-m", "flag", "--threshold", "4", "--delimiter", ";")
    assert rep["kind"] == "mean" and rep["missing_attribute"] == 1
    rates = {r["cohort"]: r for r in rep["approval_rates"]}
    assert rates["a"]["value"] == pytest.approx(2 / 3)  # scores 3,4,5: two of three >= 4
    assert rates["b"]["value"] == pytest.approx(1 / 3)
    assert rep["classifier"]["n"] == 120
    names = [c["name"] for c in rep["check"]["criteria"]]
    assert names == ["four_fifths", "demographic_parity_ratio", "equalized_odds_ratio"]


def test_csv_file_errors(file_cli: Cli, tmp_path: Path) -> None:
    file = tmp_path / "x.csv"
    file.write_text("group,value\na,1\nb,oops\n")
    bad = file_cli("fairness", "--file", str(file), "-a", "group", "-s", "value", code=2)
    assert "'oops'" in bad.stderr
    missing = file_cli("fairness", "--file", str(file), "-a", "grp", "-s", "value",
                         code=2)
    assert "unknown column 'grp'" in missing.stderr
    file_cli("fairness", "--file", str(tmp_path / "none.csv"), "-a", "g", "-s", "v",
               code=2)
    file_cli("fairness", "--file", str(file), "-a", "group", code=2)
    both = file_cli("fairness", "--file", str(file), "-p", "fair", "-a", "group", "-s",
                      "value", code=2)
    assert "one of them" in both.stderr
    cont = tmp_path / "c.csv"
    cont.write_text("group,value,pred\na,0.5,1\nb,0.7,0\n")
    nope = file_cli("fairness", "--file", str(cont), "-a", "group", "-s", "value", "-m",
                      "pred", code=2)
    assert "--threshold" in nope.stderr
