"""The experiment report from an analysis dict: Markdown tables and a self-contained HTML
page (inline style and SVG, nothing fetched), user text escaped in both, numbers with
their interval and method, "not estimable" with its reason and never NaN; the confidence
sequence plot (a band and a line per treatment arm, zero and MDE lines, open ends of
one-sided intervals)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.cli import build_app
from feedbackloop.experiments import assign, create_experiment, start_experiment
from feedbackloop.experiments.report import (
    AA_SIMULATION,
    PEEKING,
    html_report,
    interval_text,
    markdown_report,
    mde_in_difference,
    p_text,
    render_report,
    report_view,
    value_text,
)
from feedbackloop.improve import registry as reg
from feedbackloop.settings import load_settings
from feedbackloop.store import Store
from feedbackloop.web.experiment_charts import nice_ticks, probability_bars, sequence_plot

from ..cli.test_cli import Cli
from .analysis_fixture import XSS, analysis, decided


def test_markdown_has_the_tables_and_no_markup_from_users() -> None:
    md = markdown_report(decided())
    assert md.startswith("# Experiment shorter-answers\n")
    for heading in ("## Decision", "## Arms", "## Lift against control",
                    "## Confidence sequence over time", "## Sample ratio",
                    "## Planned and actual sample", "## Guardrails", "## Bayesian view",
                    "## Planned looks (group-sequential)", "## Stopping rules", "## Notes"):
        assert heading in md
    # every table row has as many cells as its header
    for block in re.findall(r"((?:^\|.*\|\n)+)", md, flags=re.M):
        rows = block.strip().split("\n")
        widths = {len(re.split(r"(?<!\\)\|", r)) for r in rows}
        assert len(widths) == 1, block
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "| control (control) | v1 | 50.0 % | 1,010 | 1,000 | 40.0 % | 0.490 |" in md
    assert "+6.0 pp | [0.7 pp, 11.3 pp] | 0.026 | 0.052 | +15.0 %" in md
    assert "[-1.0 pp, 13.0 pp] | 0.210 | no difference shown yet" in md
    assert "**Ship**" in md and "latency\\_ok" in md
    assert "not estimable: zero variance in both arms" in md
    # the peeking lesson, with the simulation's and the published figures
    assert "24.5 %" in md and "1.3 %" in md and "14.2 %" in md


def test_html_is_self_contained_and_escaped() -> None:
    page = html_report(decided())
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "<script" not in page.lower() and page.count("&lt;script&gt;") >= 4
    assert "onerror=alert(2)>" not in page
    # nothing fetched: no link, image, stylesheet or URL but the SVG namespace
    assert not re.search(r"<(link|img|iframe|object)\b", page)
    assert re.findall(r"https?://[^\s\"']+", page) == ["http://www.w3.org/2000/svg"]
    assert page.count("<svg") == 1 and 'class="band"' in page
    assert '"Segoe UI"' in page  # the stylesheet is not escaped into &#34;
    assert "Ship</strong> (short &lt;script&gt;" in page
    assert render_report(decided(), "html") == page
    assert render_report(decided(), "md") == markdown_report(decided())
    with pytest.raises(ValueError, match="html or md"):
        render_report(decided(), "pdf")  # type: ignore[arg-type]


def test_degenerate_parts_say_why_and_no_nan_appears() -> None:
    a = analysis()
    comp = a["primary"]["comparisons"][1]
    for part in ("absolute", "relative", "sequential"):
        comp[part] = {"estimable": False, "reason": "fewer than 2 units in arm terse"}
    a["arms"][2].update(mean=None, sd=None)
    a["bayes"] = []
    a["group_sequential"] = None
    a["srm"] = {}
    for text in (markdown_report(a), html_report(a)):
        assert "not estimable: fewer than 2 units in arm terse" in text
        assert not re.search(r"\bnan\b|\binf\b", text, flags=re.I)
    view = report_view(a)
    assert view["comparisons"][1]["verdict"] == "not estimable"
    assert view["arms"][2]["mean"] == "n/a"


def test_numbers_are_formatted_with_their_unit() -> None:
    assert value_text(0.4, "proportion") == "40.0 %"
    assert value_text(0.06, "proportion", diff=True) == "+6.0 pp"
    assert value_text(-0.25, "mean", diff=True) == "-0.250"
    assert value_text(0.15, "mean", diff=True, relative=True) == "+15.0 %"
    assert value_text(float("nan"), "mean") == "n/a"
    assert value_text(1234567.0, "mean") == "1.23e+06"
    assert interval_text([None, 0.1], "proportion") == "[-∞, 10.0 pp]"
    assert interval_text([0.5, None], "mean") == "[0.500, +∞]"
    assert interval_text(None, "mean") == "n/a"
    assert p_text(0.0001) == "< 0.001" and p_text(0.5) == "0.500" and p_text(None) == "n/a"
    assert PEEKING[2] == (5, 0.142)
    assert AA_SIMULATION["fixed_horizon_20"] > 3 * 0.05 > AA_SIMULATION["sequential_20"]


def test_verdicts_follow_the_sequential_interval_and_the_direction() -> None:
    a = analysis()
    comp = a["primary"]["comparisons"][0]
    comp["sequential"]["ci95"] = [0.01, 0.11]
    assert report_view(a)["comparisons"][0]["verdict"] == "better than control"
    a["primary"]["higher_is_better"] = False
    assert report_view(a)["comparisons"][0]["verdict"] == "worse than control"


def test_a_relative_mde_is_drawn_on_the_difference_scale() -> None:
    a = analysis()
    assert mde_in_difference(a) == pytest.approx(0.05)
    a["experiment"]["design"]["relative"] = True
    a["experiment"]["design"]["mde"] = 0.10
    assert mde_in_difference(a) == pytest.approx(0.10 * 0.40)  # control mean 0.40
    a["primary"]["higher_is_better"] = False
    assert mde_in_difference(a) == pytest.approx(-0.04)


def _points(svg: str, cls: str) -> list[list[tuple[float, float]]]:
    out = []
    for pts in re.findall(rf'class="{cls}" points="([^"]+)"', svg):
        out.append([tuple(map(float, p.split(","))) for p in pts.split()])  # type: ignore[misc]
    return out


def test_the_sequence_plot_draws_bands_lines_zero_and_mde() -> None:
    a = analysis()
    svg = str(sequence_plot(a["sequential_path"], mde=0.05, kind="proportion",
                            title=f"t {XSS}"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count('class="band"') == 2 and svg.count('class="estimate"') == 2
    assert 'class="zero"' in svg and 'class="mde"' in svg
    assert 'data-looks="3"' in svg and 'data-last-width="0.14"' in svg
    # the band of the first arm narrows from the first look to the last (pixels)
    band = _points(svg, "band")[0]
    lows, highs = band[:3], band[3:][::-1]
    widths = [lo[1] - hi[1] for lo, hi in zip(lows, highs, strict=True)]
    assert widths[0] > widths[1] > widths[2] > 0
    # lines run left to right by n
    line = _points(svg, "estimate")[0]
    assert [p[0] for p in line] == sorted(p[0] for p in line)


def test_the_sequence_plot_handles_open_ends_single_looks_and_nothing() -> None:
    path: list[dict[str, Any]] = [
        {"arm": "b", "at": "2026-01-01", "n": 10, "estimate": 0.2, "ci": [0.05, None]},
        {"arm": "b", "at": "2026-01-02", "n": 20, "estimate": 0.1, "ci": [0.02, None]},
        {"arm": "c", "at": "2026-01-02", "n": 20, "estimate": 0.3, "ci": [0.1, 0.5]},
        {"arm": "d", "n": 5, "estimate": float("nan"), "ci": [0, 1]}]
    svg = str(sequence_plot(path, mde=None, kind="mean", title="one-sided"))
    assert 'class="mde"' not in svg and svg.count('class="band"') == 1
    assert 'data-arm="c" data-looks="1"' in svg and 'data-arm="d"' not in svg
    assert "+∞" in svg and "nan" not in svg.lower()
    assert sequence_plot([], mde=0.1, kind="mean", title="none") is None


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(-0.173, 0.263) == [-0.1, 0.0, 0.1, 0.2]
    assert nice_ticks(0, 1500) == [0, 500, 1000, 1500]
    for lo, hi in ((-3.7, 12.2), (0.001, 0.0093), (-1e6, 3e6)):
        ticks = nice_ticks(lo, hi)
        assert 3 <= len(ticks) <= 11 and lo <= ticks[0] and ticks[-1] <= hi
        assert all(math.isclose(b - a, ticks[1] - ticks[0]) for a, b in
                   itertools.pairwise(ticks))


def test_probability_bars_show_each_arm_and_the_floor() -> None:
    svg = str(probability_bars([{"name": f"a {XSS}", "probability": 0.7},
                                {"name": "b", "probability": 0.3},
                                {"name": "c", "probability": None}],
                               floor=0.05, title="p"))
    assert svg.count('class="bar"') == 2 and 'class="floor"' in svg
    assert "<script>" not in svg and "70.0 %" in svg
    assert probability_bars([], floor=None, title="p") is None


# -- the command ------------------------------------------------------------------------------

@pytest.fixture
def stored(db_url: str, tmp_path: Path) -> Iterator[Cli]:
    """Project ``lab`` with a running experiment ``shorter`` (v1 against v2 of
    ``generation``, primary metric ``helpful`` rated by annotators) and 80 rated units."""
    settings = load_settings(data_dir=str(tmp_path / "data"), database_url=db_url,
                             pseudonym_key="cli-test-key")
    store = Store.from_url(db_url)
    try:
        project = create_project(store, "lab")
        create_signal(store, project, SignalIn(name="helpful", type="binary"))
        for v in ("v1", "v2"):
            reg.register_version(store, project, "generation", v)
        create_experiment(store, project, "shorter", component="generation",
                          hypothesis=f"shorter is better {XSS}", design={
                              "arms": [{"name": "control", "version": "v1"},
                                       {"name": "short", "version": "v2"}],
                              "primary": {"metric": "helpful"}, "mde": 0.1,
                              "baseline": 0.5})
        start_experiment(store, project, "shorter")
        key = settings.pseudonym_key_bytes()
        records, ratings = [], []
        for k in range(80):
            served = assign(store, project, "shorter", f"u{k}", pseudonym_key=key)
            records.append({"id": f"i{k}", "input": "q", "output": "a", "user_id": f"u{k}",
                            "consent": True, "experiment": "shorter", "arm": served["arm"],
                            "propensity": served["propensity"]})
            ratings.append({"id": f"r{k}", "interaction_id": f"i{k}", "signal": "helpful",
                            "value": (k % 3 == 0) != (served["arm"] == "short"),
                            "source": "annotator", "rater_id": "ann"})
        ing = Ingestor(store, settings, project)
        assert ing.interactions(records).rejected == 0
        assert ing.feedback(ratings).rejected == 0
    finally:
        store.dispose()
    yield Cli(db_url, tmp_path)


def test_the_report_command_writes_markdown_and_html(stored: Cli, tmp_path: Path) -> None:
    md = stored("experiment", "report", "shorter", "--project", "lab", "--format", "md")
    text = md.stdout
    assert text.startswith("# Experiment shorter\n") and XSS not in text
    assert re.search(r"\| control \(control\) \| v1 \| 50\.0 % \| \d+ \| \d+ \|", text)
    assert "| short |" in text and "## Confidence sequence over time" in text
    assert "covers 80 of 80 exposed units" in text
    out = tmp_path / "report.html"
    written = stored("experiment", "report", "shorter", "-p", "lab", "-o", str(out))
    assert "wrote the html report of shorter" in written.stderr and written.stdout == ""
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<svg" in page and "<script" not in page
    assert "&lt;script&gt;" in page


def test_the_report_command_refuses_clearly(stored: Cli, tmp_path: Path) -> None:
    missing = stored("experiment", "report", "nope", "-p", "lab", code=2)
    assert "nope" in missing.stderr
    folder = stored("experiment", "report", "shorter", "-p", "lab", "-o", str(tmp_path),
                    code=2)
    assert "is a folder" in folder.stderr
    bad = stored("experiment", "report", "shorter", "-p", "lab", "--format", "pdf", code=2)
    assert "pdf" in bad.stderr
    helped = stored.runner.invoke(build_app(), ["experiment", "report", "--help"],
                                  prog_name="feedbackloop")
    assert helped.exit_code == 0 and "--format" in helped.stdout
