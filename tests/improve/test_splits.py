"""Grouped, stratified, reproducible splits."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from feedbackloop.errors import InvalidInput
from feedbackloop.improve.splits import check_no_leak, split_groups


def _rows(n_prompts: int = 2_000, seed: int = 1) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    groups, labels = [], []
    for p in range(n_prompts):
        label = "good" if p % 4 else "bad"  # 25 % bad prompts
        for _ in range(rng.randint(1, 5)):
            groups.append(f"prompt {p}")
            labels.append(label)
    return groups, labels


def test_no_prompt_in_two_splits_and_shares_follow_fractions():
    groups, _ = _rows()
    splits = split_groups(groups, seed=7)
    check_no_leak(groups, splits)
    per_group = {g: s for g, s in zip(groups, splits, strict=True)}
    counts = Counter(per_group.values())
    # Largest remainder over 2,000 groups: exactly 1,600 / 200 / 200.
    assert counts == {"train": 1600, "validation": 200, "test": 200}


def test_same_seed_same_split_whatever_the_row_order():
    groups, _ = _rows()
    first = dict(zip(groups, split_groups(groups, seed=3), strict=True))
    shuffled = groups[:]
    random.Random(5).shuffle(shuffled)
    again = dict(zip(shuffled, split_groups(shuffled, seed=3), strict=True))
    assert first == again
    other = dict(zip(groups, split_groups(groups, seed=4), strict=True))
    assert sum(first[g] != other[g] for g in first) > 300


def test_stratified_split_keeps_each_strata_share_within_one_group():
    groups, labels = _rows()
    splits = split_groups(groups, seed=0, strata=labels,
                          fractions={"train": 0.7, "test": 0.3})
    check_no_leak(groups, splits)
    per_group = {g: (s, lab) for g, s, lab in zip(groups, splits, labels, strict=True)}
    by = Counter(per_group.values())
    assert by[("test", "bad")] == 150   # 500 bad prompts x 0.3
    assert by[("test", "good")] == 450  # 1,500 good prompts x 0.3
    assert by[("train", "bad")] == 350


def test_a_leak_is_named():
    with pytest.raises(InvalidInput, match=r"prompt 'p1' is in split 'train' \(row 0\) and "
                                           r"in split 'test' \(row 2\)"):
        check_no_leak(["p1", "p2", "p1"], ["train", "test", "test"])


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"fractions": {"train": 0.8, "test": 0.3}}, "fractions"),
    ({"fractions": {"train": 1.5}}, "fractions.train"),
    ({"fractions": {}}, "fractions"),
    ({"strata": ["a"]}, "strata"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        split_groups(["a", "b"], **kwargs)
    assert err.value.details["field"] == field
