"""Toggles: rule matching, percentage splits by hashed unit id, and their errors."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from feedbackloop.errors import InvalidInput
from feedbackloop.improve.toggles import BUCKETS, Condition, Rule, Toggle, bucket

UNITS = [f"user-{i}" for i in range(40_000)]


def _share(toggle: Toggle, version: str, attrs: dict | None = None) -> float:
    return sum(toggle.resolve(u, attrs).version == version for u in UNITS) / len(UNITS)


def test_bucket_is_stable_and_uniform():
    assert bucket("s", "user-1") == bucket("s", "user-1")
    # Salts split independently: two salts agree on a unit's bucket about 1 in 10,000 times.
    assert sum(bucket("s", u) == bucket("t", u) for u in UNITS[:1000]) <= 2
    counts = [0] * 10
    for u in UNITS:
        counts[bucket("salt", u) * 10 // BUCKETS] += 1
    # Chi-square goodness of fit to uniform deciles; a broken hash fails by miles.
    assert stats.chisquare(counts).pvalue > 1e-4


def test_ten_percent_of_one_cohort():
    toggle = Toggle.from_dict("generation", [
        {"when": [{"attribute": "locale", "op": "eq", "value": "de"}],
         "split": {"v2": 10}}], default="v1")
    share = _share(toggle, "v2", {"locale": "de"})
    # 40,000 units at p = 0.1: 4 standard errors either side.
    se = math.sqrt(0.1 * 0.9 / len(UNITS))
    assert abs(share - 0.1) < 4 * se
    assert _share(toggle, "v2", {"locale": "fr"}) == 0
    assert _share(toggle, "v2", {}) == 0
    assert toggle.resolve("user-1", {"locale": "fr"}).version == "v1"
    assert toggle.resolve("user-1", {"locale": "fr"}).rule is None


def test_a_unit_keeps_its_version_and_growing_the_rollout_keeps_the_first_units():
    small = Toggle("ranking", [Rule({"v2": 5})], default="v1").compile()
    large = Toggle("ranking", [Rule({"v2": 20})], default="v1").compile()
    in_small = {u for u in UNITS if small.resolve(u).version == "v2"}
    in_large = {u for u in UNITS if large.resolve(u).version == "v2"}
    assert in_small and in_small <= in_large
    assert all(small.resolve(u).version == "v2" for u in list(in_small)[:50])


def test_split_between_versions_and_fall_through():
    toggle = Toggle.from_dict("generation", [
        {"name": "beta testers", "when": [{"attribute": "segment", "op": "in",
                                           "value": ["beta", "staff"]}],
         "split": {"v3": 50, "v2": 50}},
        {"split": {"v2": 25}},
    ], default="v1")
    beta = [toggle.resolve(u, {"segment": "beta"}).version for u in UNITS[:10_000]]
    assert set(beta) == {"v2", "v3"}
    assert abs(beta.count("v3") / 10_000 - 0.5) < 0.02
    rest = [toggle.resolve(u, {"segment": "public"}) for u in UNITS[:10_000]]
    assert {r.rule for r in rest} == {1, None}
    assert abs(sum(r.version == "v2" for r in rest) / 10_000 - 0.25) < 0.02


def test_conditions_compare_json_scalars_as_text_and_missing_attributes():
    ne = Toggle("c", [Rule({"v2": 100}, (Condition("platform", "ne", "ios"),))], "v1")
    assert ne.resolve("u", {"platform": "android"}).version == "v2"
    assert ne.resolve("u", {}).version == "v2"
    assert ne.resolve("u", {"platform": "ios"}).version == "v1"
    flag = Toggle("c", [Rule({"v2": 100}, (Condition("paid", "eq", True),
                                            Condition("tier", "in", [2, 3])))], "v1")
    assert flag.resolve("u", {"paid": "true", "tier": "2"}).version == "v2"
    assert flag.resolve("u", {"paid": True, "tier": 3.0}).version == "v2"
    assert flag.resolve("u", {"paid": False, "tier": 2}).version == "v1"
    assert flag.resolve("u", {"paid": True}).version == "v1"


@pytest.mark.parametrize(("rules", "field", "words"), [
    ([{"split": {"v2": 60, "v3": 50}}], "rules[0].split", "110 %"),
    ([{"split": {"v2": -1}}], "rules[0].split", "from 0 to 100"),
    ([{"split": {"v2": True}}], "rules[0].split", "from 0 to 100"),
    ([{"split": {}}], "rules[0].split", "at least one version"),
    ([{"split": {"v2": 5}}, {"when": [{"attribute": "a", "op": "like", "value": 1}],
                             "split": {"v2": 5}}], "rules[1].when[0].op", "unknown operator"),
    ([{"when": [{"attribute": "a", "op": "in", "value": "x"}], "split": {"v": 1}}],
     "rules[0].when[0].value", "non-empty list"),
    ([{"split": {"v2": 5}, "percent": 3}], "rules[0]", "unknown field"),
    (["v2"], "rules[0]", "is an object"),
])
def test_bad_rules_name_the_rule_and_field(rules, field, words):
    with pytest.raises(InvalidInput) as err:
        Toggle.from_dict("c", rules)
    assert err.value.details["field"] == field
    assert words in str(err.value)
