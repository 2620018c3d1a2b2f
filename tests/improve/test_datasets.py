"""Datasets: immutable versions, the content hash, lineage both ways, splits, dedupe."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from feedbackloop.errors import InvalidInput, NotFound
from feedbackloop.improve.datasets import (
    datasets_for_feedback,
    feedback_for_dataset,
    get_dataset,
    get_dataset_by_id,
    iter_rows,
    list_datasets,
    render_card,
)
from feedbackloop.improve.dedupe import _Signer, dedupe_rows, lsh_bands, normalise
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import dataset_lineage, dataset_rows, datasets

from .test_recipes import World


@pytest.fixture
def world(store: Store, settings: Settings) -> World:
    return World(store, settings)


def _kto_world(w: World, n: int = 40, **attrs: Any) -> None:
    for i in range(n):
        extra = {"attributes": {k: v(i) for k, v in attrs.items()}} if attrs else {}
        w.interaction(f"i{i}", f"prompt number {i} about topic {i % 7}",
                      f"completion {i} with some words {i * 3}", **extra)
        w.fb(f"i{i}", "thumbs", i % 3 != 0, rater="r1", fid=f"fb{i}")


def test_versions_hash_and_immutability(world: World) -> None:
    _kto_world(world)
    one = world.build("kto", {"signal": "thumbs"})
    two = world.build("kto", {"signal": "thumbs"})
    assert (one.version, two.version) == (1, 2)
    assert one.content_hash == two.content_hash and len(one.content_hash) == 64
    assert two.card["previous"] == {"version": 1, "content_hash": one.content_hash,
                                    "same_content": True}
    # defaults spelled out give the same hash: params are validated before hashing
    three = world.build("kto", {"signal": "thumbs", "min_agreement": None, "seed": 0})
    assert three.content_hash == one.content_hash
    assert three.params["near_threshold"] == 0.8 and three.params["splits"]["train"] == 0.8
    # another seed moves rows between splits: another hash
    other = world.build("kto", {"signal": "thumbs", "seed": 5})
    assert other.content_hash != one.content_hash
    # new feedback: another hash
    world.fb("i1", "thumbs", False, rater="r2")
    four = world.build("kto", {"signal": "thumbs"})
    assert four.content_hash != one.content_hash and four.version == 5
    with world.store.read() as conn:
        assert [d.version for d in list_datasets(conn, "shop")] == [1, 2, 3, 4, 5]
        assert get_dataset(conn, "shop", "ds").version == 5
        assert get_dataset(conn, "shop", "ds", 2).id == two.id
        assert get_dataset_by_id(conn, "shop", one.id).to_dict()["ref"] == "ds@1"
        with pytest.raises(NotFound, match="no dataset 'ds' version 9"):
            get_dataset(conn, "shop", "ds", 9)
        with pytest.raises(NotFound):
            get_dataset(conn, "shop", "other")
        # version 1's rows are untouched by later builds
        rows = list(iter_rows(conn, one))
    assert len(rows) == one.counts["rows"] == 40
    assert [r["position"] for r in rows] == list(range(40))


def test_same_hash_in_another_database(world: World, tmp_path: Any) -> None:
    """The hash names content, not storage: built in a second SQLite database from the same
    records it is the same."""
    _kto_world(world)
    here = world.build("kto", {"signal": "thumbs"})
    from feedbackloop.settings import load_settings

    sqlite_url = f"sqlite:///{tmp_path / 'other.db'}"
    other = Store.from_url(sqlite_url)
    other.migrate()
    try:
        w2 = World(other, load_settings(data_dir=str(tmp_path / "d2"), database_url=sqlite_url,
                                        pseudonym_key="test-pseudonym-key"))
        _kto_world(w2)
        assert w2.build("kto", {"signal": "thumbs"}).content_hash == here.content_hash
    finally:
        other.dispose()


def test_lineage_both_ways(world: World) -> None:
    _kto_world(world, n=10)
    world.fb("i0", "thumbs", False, rater="r2", fid="late")
    ds1 = world.build("kto", {"signal": "thumbs"}, name="first")
    ds2 = world.build("kto", {"signal": "thumbs", "splits": {"train": 1.0}}, name="second")
    with world.store.read() as conn:
        rows = list(iter_rows(conn, ds1))
        per_row = sorted(fid for r in rows for fid in r["feedback_ids"])
        assert per_row == sorted([f"fb{i}" for i in range(10)] + ["late"])
        assert feedback_for_dataset(conn, ds1) == per_row
        row0 = next(r for r in rows if r["data"]["completion"].startswith("completion 0 "))
        assert row0["feedback_ids"] == ["fb0", "late"]
        assert [d.ref for d in datasets_for_feedback(conn, "shop", "late")] == [
            "first@1", "second@1"]
        with pytest.raises(NotFound, match="no feedback 'nope'"):
            datasets_for_feedback(conn, "shop", "nope")
        n_lineage = conn.execute(select(func.count()).select_from(dataset_lineage).where(
            dataset_lineage.c.dataset_id == ds1.id)).scalar_one()
    assert n_lineage == 11 == ds1.counts["feedback"]["used"]
    assert ds1.card["lineage"]["raters"] == 2 and ds1.card["lineage"]["interactions"] == 10
    assert ds1.card["lineage"]["signals"] == {"thumbs": {"annotator": 11}}
    assert ds2.counts["splits"] == {"train": 10}


def test_splits_grouped_by_prompt_and_stratified(world: World) -> None:
    w = world
    for i in range(120):
        # 40 prompts, three outputs each; a fifth of the outputs bad
        w.interaction(f"i{i}", f"prompt {i // 3}", f"output {i}: " + "word " * (i % 5))
        w.fb(f"i{i}", "thumbs", i % 5 != 0, rater="r")
    ds = w.build("kto", {"signal": "thumbs", "near_duplicates": False, "stratify": True,
                         "splits": {"train": 0.5, "test": 0.5}, "seed": 3})
    with w.store.read() as conn:
        rows = list(iter_rows(conn, ds))
        assert len(list(iter_rows(conn, ds, "test"))) == ds.counts["splits"]["test"]
        with pytest.raises(InvalidInput, match="no split 'validation'"):
            list(iter_rows(conn, ds, "validation"))
    where: dict[str, set[str]] = {}
    for r in rows:
        where.setdefault(r["data"]["prompt"], set()).add(r["split"])
    assert all(len(s) == 1 for s in where.values())  # no prompt in two splits
    assert sum(ds.counts["splits"].values()) == 120
    assert set(ds.counts["labels_by_split"]) == {"train", "test"}
    for split in ("train", "test"):
        assert ds.counts["labels_by_split"][split]["false"] > 0
        assert ds.counts["labels_by_split"][split]["true"] > 0
    # stored order: train first, then test
    assert [r["split"] for r in rows] == sorted((r["split"] for r in rows),
                                               key=["train", "test"].index)


def test_user_given_splits_refuse_a_leak(world: World) -> None:
    w = world
    for i in range(6):
        split = "train" if i < 3 else "test"
        w.interaction(f"i{i}", f"prompt {i}", f"output {i}", attributes={"fold": split})
        w.fb(f"i{i}", "thumbs", i % 2 == 0, rater="r")
    ds = w.build("kto", {"signal": "thumbs", "split_attribute": "fold",
                         "near_duplicates": False})
    assert ds.counts["splits"] == {"train": 3, "validation": 0, "test": 3}
    # the same prompt in a train and a test interaction
    w.interaction("leak", "prompt 0", "another output", attributes={"fold": "test"})
    w.fb("leak", "thumbs", False, rater="r")
    with pytest.raises(InvalidInput, match="prompt 'prompt 0' is in split") as exc:
        w.build("kto", {"signal": "thumbs", "split_attribute": "fold",
                        "near_duplicates": False}, name="leaky")
    assert exc.value.field == "split"
    w.interaction("nofold", "prompt 9", "output 9")
    w.fb("nofold", "thumbs", True, rater="r")
    with pytest.raises(InvalidInput, match="no usable split in attribute 'fold'"):
        w.build("kto", {"signal": "thumbs", "split_attribute": "fold"}, name="leaky")
    with w.store.read() as conn:
        assert [d.name for d in list_datasets(conn, "shop")] == ["ds"]
        assert conn.execute(select(func.count()).select_from(datasets)).scalar_one() == 1
        n_rows = conn.execute(select(func.count()).select_from(dataset_rows)).scalar_one()
    assert n_rows == 6


def test_dedupe_in_a_build(world: World) -> None:
    w = world
    base = "The quick brown fox jumps over the lazy dog near the river bank today"
    w.interaction("a", "Tell me a story", base)
    w.interaction("b", "Tell me a story.", base.upper() + "!")  # exact after normalising
    w.interaction("c", "tell me a story", base + " again")  # near duplicate
    w.interaction("d", "Something else", "Entirely different words in this one")
    for cid, v in (("a", True), ("b", True), ("c", True), ("d", False)):
        w.fb(cid, "thumbs", v, rater="r")
    ds = w.build("kto", {"signal": "thumbs", "near_threshold": 0.7})
    assert ds.counts["rows"] == 2
    assert ds.counts["dropped"] == {"duplicate": 1, "near_duplicate": 1}
    off = w.build("kto", {"signal": "thumbs", "dedupe": False, "near_duplicates": False},
                  name="all")
    assert off.counts["rows"] == 4


def test_card_renders_the_facts(world: World) -> None:
    _kto_world(world, n=12)
    ds = world.build("kto", {"signal": "thumbs"})
    text = render_card(ds, files={"train": "train.jsonl"}, task="kto", style="standard")
    assert text.startswith("---\nconfigs:\n- config_name: default\n  data_files:\n"
                           "  - split: train\n    path: train.jsonl\n---\n")
    assert ds.content_hash in text and "| rows | 12 |" in text
    assert "`kto` recipe" in text and '"signal": "thumbs"' in text
    assert "12 feedback records on 12 interactions from 1 raters" in text


# -- dedupe on its own ------------------------------------------------------------------------

def test_normalise() -> None:
    assert normalise("  Hello,   WORLD!! ") == "hello world"
    assert normalise("don't_stop") == "don t stop"
    assert normalise("Straße") == "strasse"


def test_exact_and_near_duplicates_with_known_truth() -> None:
    rng = random.Random(4)
    vocab = [f"w{i}" for i in range(2000)]
    originals = [" ".join(rng.choice(vocab) for _ in range(30)) for _ in range(300)]
    rows: list[tuple[str, ...]] = [("p", t) for t in originals]
    truth = {}
    for k in range(40):  # one word changed of 30: Jaccard of 3-shingles about 0.8-0.9
        words = originals[k].split()
        words[15] = "changed"
        truth[len(rows)] = ("near_duplicate", k)
        rows.append(("p", " ".join(words)))
    for k in range(40, 60):  # case and punctuation only
        truth[len(rows)] = ("duplicate", k)
        rows.append(("P!", originals[k].upper() + "."))
    for k in range(60, 80):  # half the words replaced: not a duplicate
        words = originals[k].split()
        words[::2] = ["other"] * 15
        rows.append(("p", " ".join(words)))
    # true Jaccard about 0.81 for the changed word, near 0 for half replaced: the margin
    # to 0.6 is four standard errors of a 128-slot estimate
    res = dedupe_rows(rows, threshold=0.6, num_perm=128)
    found = {i: (res.reason[i], int(res.duplicate_of[i])) for i in range(len(rows))
             if res.reason[i]}
    assert found == truth


def test_field_order_matters_for_preferences() -> None:
    rows = [("prompt", "answer one is good", "answer two is bad"),
            ("prompt", "answer two is bad", "answer one is good")]
    assert dedupe_rows(rows).keep.tolist() == [True, True]


def test_minhash_estimates_jaccard() -> None:
    """The share of equal slots estimates the Jaccard similarity of the shingle sets
    (Broder 1997): with 256 slots the standard error is at most 0.03."""
    signer = _Signer(256, 1, seed=2)
    a = " ".join(f"t{i}" for i in range(100))
    for overlap in (20, 50, 80):
        b = " ".join(f"t{i}" for i in range(100 - overlap, 200 - overlap))
        true = overlap / (200 - overlap)
        sig = signer.sign([a, b], tag=1)
        est = float((sig[0] == sig[1]).mean())
        assert abs(est - true) < 0.1, (overlap, est, true)


def test_lsh_bands_fit_the_signature() -> None:
    for perms, t in ((64, 0.8), (128, 0.9), (32, 0.6)):
        b, r = lsh_bands(perms, t)
        assert b * r <= perms
        assert (1 / b) ** (1 / r) < t  # the S-curve rises before the threshold
        # a pair at the threshold is found with high probability
        assert 1 - (1 - t**r) ** b > 0.9
    assert np.all(dedupe_rows([]).keep == np.array([], dtype=bool))
