"""``feedbackloop experiment sample-size`` and ``experiment analyze`` on files (no project,
no database), through the real command tree: the JSON keys the issue makes binding, the
published values they reproduce (R power.prop.test, R t.test on the sleep data, GrowthBook
gbstats), and the bad-input messages that name the line and the column."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from feedbackloop.cli import build_app

SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def run(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(build_app(), list(args), prog_name="feedbackloop",
                                env={"COLUMNS": "120"})
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def run_json(*args: str) -> Any:
    return orjson.loads(run(*args, "--json").stdout)


def write(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_sample_size_proportions_and_means() -> None:
    # R: power.prop.test(p1 = 0.10, p2 = 0.12, power = 0.8) -> n = 3840.85 per group.
    plan = run_json("experiment", "sample-size", "--baseline", "0.10", "--mde", "0.02")
    assert (plan["per_arm"], plan["total"]) == (3841, 7682)
    assert "power.prop.test" in plan["method"]
    relative = run_json("experiment", "sample-size", "--baseline", "0.10", "--mde", "0.2",
                        "--relative")
    assert relative["per_arm"] == 3841
    # R: power.t.test(power = .90, delta = 1) -> n = 22.02110
    means = run_json("experiment", "sample-size", "--sd", "1", "--mde", "1", "--power",
                     "0.9")
    assert means["per_arm"] == 23 and "power.t.test" in means["method"]
    one_sided = run_json("experiment", "sample-size", "--baseline", "0.1", "--mde", "0.02",
                         "--sides", "1", "--alpha", "0.05")
    assert one_sided["per_arm"] < 3841
    text = run("experiment", "sample-size", "--baseline", "0.10", "--mde", "0.02").stdout
    assert "3,841 units per arm" in text and "power.prop.test" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--mde", "0.02"], "--baseline"),
    (["--baseline", "0.1"], "--mde"),
    (["--baseline", "1.5", "--mde", "0.02"], "baseline proportion"),
    (["--baseline", "0.95", "--mde", "0.1"], "outside (0, 1)"),
    (["--sd", "1", "--mde", "0.1", "--relative"], "baseline"),
    (["--baseline", "0.1", "--mde", "0.02", "--sides", "3"], "sides"),
])
def test_sample_size_bad_input(args: list[str], message: str) -> None:
    result = run("experiment", "sample-size", *args, code=2)
    assert message in result.stderr


def test_analyze_unit_level_matches_r_and_scipy(tmp_path: Path) -> None:
    rows = [["a", v] for v in SLEEP_1] + [["control", v] for v in SLEEP_2]
    path = write(tmp_path / "sleep.csv", ["group", "extra"], rows)
    result = run_json("experiment", "analyze", str(path), "--arm", "group", "--metric",
                      "extra")
    assert result["control"] == "control" and result["kind"] == "mean"
    assert [a["arm"] for a in result["arms"]] == ["a", "control"]
    assert set(result["arms"][0]) >= {"arm", "n", "mean", "sd"}
    assert result["srm_p_value"] == pytest.approx(1.0)
    (comp,) = result["comparisons"]
    assert comp["arm"] == "a"
    # R t.test(extra ~ group, data = sleep): CI -3.3654832 0.2054832, p 0.07939.
    assert comp["absolute"]["estimate"] == pytest.approx(-1.58)
    assert comp["absolute"]["ci95"] == pytest.approx([-3.3654832, 0.2054832], abs=1e-7)
    assert comp["absolute"]["p_value"] == pytest.approx(0.07939, abs=1e-5)
    for key in ("estimate", "ci95", "p_value"):
        assert key in comp["relative"]
    assert set(comp["sequential"]) >= {"ci95", "p_value"}
    assert comp["sequential"]["ci95"][0] < comp["absolute"]["ci95"][0]
    assert comp["adjusted_p_value"] == pytest.approx(comp["absolute"]["p_value"])
    assert sum(b["p_best"] for b in result["bayes"]) == pytest.approx(1.0)
    text = run("experiment", "analyze", str(path), "--arm", "group", "--metric",
               "extra").stdout
    assert "-3.365" in text and "Welch" in text and "sample ratio" in text
    fixed = run_json("experiment", "analyze", str(path), "--arm", "group", "--metric",
                     "extra", "--no-sequential", "--control", "a")
    assert fixed["comparisons"][0]["sequential"] is None
    assert fixed["comparisons"][0]["arm"] == "control"


def test_analyze_summary_rows_match_gbstats(tmp_path: Path) -> None:
    # gbstats test_two_sided_ttest_absolute: 0.41 (sd 3.9, n 3407) vs 0.7 (sd 6.2,
    # n 3461): ci [0.04538, 0.53462], p 0.02016 -- given here as summary rows.
    a = ("control", 3407, 1396.87, 52377.9767)
    b = ("treatment", 3461, 2422.7, 134698.29)
    rows = []
    for name, n, s, ss in (a, b):
        mean = s / n
        rows.append([name, n, repr(mean), repr(float(np.sqrt((ss - n * mean * mean)
                                                              / (n - 1))))])
    path = write(tmp_path / "arms.csv", ["arm", "n", "mean", "sd"], rows)
    result = run_json("experiment", "analyze", str(path), "--summary")
    comp = result["comparisons"][0]
    assert comp["absolute"]["ci95"] == pytest.approx([0.04538, 0.53462], abs=1e-5)
    assert comp["absolute"]["p_value"] == pytest.approx(0.02016, abs=1e-5)
    assert comp["relative"]["ci95"] == pytest.approx([-0.03526, 1.44989], abs=1e-5)
    # SRM against equal allocation: 3407 vs 3461 is fine; against 80/20 it is flagged.
    assert not result["srm"]["flagged"]
    srm = run_json("experiment", "analyze", str(path), "--summary", "--weights",
                   "control=0.8", "--weights", "treatment=0.2")
    assert srm["srm"]["flagged"] and srm["srm_p_value"] < 0.001
    assert any("sample-ratio mismatch" in n for n in srm["notes"])
    msprt = run_json("experiment", "analyze", str(path), "--summary", "--sequential-method",
                     "msprt", "--tuning-n", "7000")
    assert msprt["comparisons"][0]["sequential"]["method"] == "msprt"


def test_analyze_binary_metric_cuped_and_many_arms(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    rows = []
    for arm, rate in (("control", 0.10), ("b", 0.10), ("c", 0.16)):
        for _ in range(1500):
            pre = rng.normal()
            rows.append([arm, int(rng.random() < rate + 0.02 * pre), round(pre, 4)])
    path = write(tmp_path / "units.csv", ["arm", "converted", "pre"], rows)
    result = run_json("experiment", "analyze", str(path), "--metric", "converted",
                      "--correction", "bh")
    assert result["kind"] == "proportion" and result["correction"] == "bh"
    by_arm = {c["arm"]: c for c in result["comparisons"]}
    assert set(by_arm) == {"b", "c"}
    assert by_arm["c"]["absolute"]["p_value"] < 0.001
    raw = [by_arm[k]["absolute"]["p_value"] for k in ("b", "c")]
    adj = [by_arm[k]["adjusted_p_value"] for k in ("b", "c")]
    assert all(x >= y for x, y in zip(adj, raw, strict=True))
    cuped = run_json("experiment", "analyze", str(path), "--metric", "converted",
                     "--covariate", "pre", "--kind", "mean")
    c = cuped["comparisons"][1]["cuped"]
    assert c["estimable"] and 0 < c["variance_reduction"] < 1
    assert "CUPED" in cuped["comparisons"][1]["method"]
    ref = scipy_stats.ttest_ind([r[1] for r in rows if r[0] == "c"],
                                [r[1] for r in rows if r[0] == "control"], equal_var=False)
    plain = run_json("experiment", "analyze", str(path), "--metric", "converted", "--kind",
                     "mean")
    assert plain["comparisons"][1]["absolute"]["p_value"] == pytest.approx(ref.pvalue)


def test_analyze_degenerate_data_is_not_estimable(tmp_path: Path) -> None:
    path = write(tmp_path / "flat.csv", ["arm", "y"],
                 [["control", 1], ["control", 1], ["t", 1], ["t", 1]])
    result = run_json("experiment", "analyze", str(path), "--metric", "y")
    comp = result["comparisons"][0]
    assert comp["absolute"] == {"estimable": False, "reason": comp["absolute"]["reason"]}
    assert "zero variance" in comp["absolute"]["reason"]
    assert comp["adjusted_p_value"] is None
    assert any("not estimable" in n for n in result["notes"])
    text = run("experiment", "analyze", str(path), "--metric", "y").stdout
    assert "not estimable" in text and "nan" not in text.lower()


@pytest.mark.parametrize(("rows", "args", "message"), [
    ([["control", "1"], ["t", "abc"]], [], "line 3 of bad.csv: column 'y' has 'abc', not a "
                                            "number"),
    ([["control", "1"], ["t", ""]], [], "line 3 of bad.csv: column 'y' is empty"),
    ([["control", "1"], ["t", "inf"]], [], "not a finite number"),
    ([["control", "1"], ["control", "2"]], [], "at least 2 arms"),
    ([["control", "1"], ["", "2"]], [], "(the arm) is empty"),
    ([["control", "1"], ["t", "2"]], ["--control", "nope"], "no arm 'nope'"),
    ([["control", "1"], ["t", "2"]], ["--weights", "control=1"], "--weights names"),
    ([["control", "1"], ["t", "2"]], ["--weights", "control=x", "--weights", "t=1"],
     "not a number"),
    ([["control", "1"], ["t", "2"]], ["--covariate", "pre"], "unknown column 'pre'"),
    ([["control", "1"], ["t", "2"]], ["--kind", "proportion"], "0/1 values"),
    ([["control", "0.5"], ["t", "0.7"]], ["--alpha", "2"], "alpha"),
])
def test_analyze_bad_input(tmp_path: Path, rows: list[list[str]], args: list[str],
                           message: str) -> None:
    path = write(tmp_path / "bad.csv", ["arm", "y"], rows)
    result = run("experiment", "analyze", str(path), "--metric", "y", *args, code=2)
    assert message in result.stderr


def test_analyze_file_errors(tmp_path: Path) -> None:
    missing = run("experiment", "analyze", str(tmp_path / "none.csv"), "--metric", "y",
                  code=2)
    assert "no file" in missing.stderr
    path = write(tmp_path / "u.csv", ["variant", "y"], [["a", 1], ["b", 2]])
    no_arm = run("experiment", "analyze", str(path), "--metric", "y", code=2)
    assert "unknown column 'arm'" in no_arm.stderr and "'variant'" in no_arm.stderr
    no_metric = run("experiment", "analyze", str(path), "--arm", "variant", code=2)
    assert "--metric" in no_metric.stderr
    summary = write(tmp_path / "s.csv", ["arm", "n", "mean", "sd"],
                    [["a", 10, 1.0, 1.0], ["b", 0, 0.0, 0.0]])
    empty_arm = run("experiment", "analyze", str(summary), "--summary", code=2)
    assert "arm 'b' has no units" in empty_arm.stderr
    frac = write(tmp_path / "f.csv", ["arm", "n", "mean", "sd"],
                 [["a", 10.5, 1.0, 1.0], ["b", 3, 0.0, 0.0]])
    assert "whole number" in run("experiment", "analyze", str(frac), "--summary",
                                 code=2).stderr
    twice = write(tmp_path / "t.csv", ["arm", "n", "mean", "sd"],
                  [["a", 10, 1.0, 1.0], ["a", 3, 0.0, 0.0]])
    assert "appears twice" in run("experiment", "analyze", str(twice), "--summary",
                                  code=2).stderr
    with_cov = run("experiment", "analyze", str(summary), "--summary", "--covariate", "x",
                   code=2)
    assert "--covariate needs unit-level rows" in with_cov.stderr


def test_analyze_text_output_escapes_markup_and_one_sided_ends(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", ["arm", "n", "mean", "sd"],
                 [["[red]ctl", 500, 1.0, 1.0], ["[bold]new", 500, 1.2, 1.0]])
    text = run("experiment", "analyze", str(path), "--summary", "--sides", "1").stdout
    assert "[red]ctl" in text and "[bold]new" in text
    assert text.count("inf]") >= 2  # the open end of the one-sided intervals, both scales
