"""Exports: columns per task and style, JSON Lines and Parquet, the card, and the
exporter's own check of what it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from feedbackloop.errors import InvalidInput
from feedbackloop.improve.datasets import Dataset
from feedbackloop.improve.exports import COLUMNS, export_dataset, validate_export
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .test_recipes import World

COMMON = {"near_duplicates": False, "splits": {"train": 0.5, "test": 0.5}}


@pytest.fixture
def world(store: Store, settings: Settings) -> World:
    w = World(store, settings)
    for k in range(8):
        prompt = f"question {k}"
        w.interaction(f"g{k}", prompt, f"good answer {k}")
        w.interaction(f"b{k}", prompt, f"bad answer {k}")
        w.fb(f"g{k}", "pref", "a", b=f"b{k}", rater="r")
        w.fb(f"g{k}", "thumbs", True, rater="r", correction=f"best answer {k}")
        w.fb(f"b{k}", "thumbs", False, rater="r")
    return w


def _jsonl(path: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines()]


def _build(w: World, recipe: str) -> Dataset:
    params: dict[str, Any] = dict(COMMON)
    if recipe in ("preference", "kto"):
        params["signal"] = "pref" if recipe == "preference" else "thumbs"
    if recipe == "kto":
        params["stratify"] = True
    return w.build(recipe, params, name=recipe)


def test_dpo_and_reward_columns(world: World, tmp_path: Path) -> None:
    ds = _build(world, "preference")
    std = export_dataset(world.store, "shop", ds, tmp_path / "dpo", task="dpo")
    assert set(std["files"]) == {"train", "test"}
    assert sum(std["rows"].values()) == 8
    row = _jsonl(std["files"]["train"])[0]
    k = row["prompt"].split()[-1]
    assert row == {"prompt": f"question {k}", "chosen": f"good answer {k}",
                   "rejected": f"bad answer {k}"}
    conv = export_dataset(world.store, "shop", ds, tmp_path / "dpoc", task="dpo",
                          style="conversational")
    row = _jsonl(conv["files"]["train"])[0]
    k = row["prompt"][0]["content"].split()[-1]
    assert row == {"prompt": [{"role": "user", "content": f"question {k}"}],
                   "chosen": [{"role": "assistant", "content": f"good answer {k}"}],
                   "rejected": [{"role": "assistant", "content": f"bad answer {k}"}]}
    rm = export_dataset(world.store, "shop", ds, tmp_path / "rm", task="reward")
    row = _jsonl(rm["files"]["train"])[0]
    k = row["chosen"].split()[-1]
    assert row == {"chosen": f"question {k}\n\ngood answer {k}",
                   "rejected": f"question {k}\n\nbad answer {k}"}
    rmc = export_dataset(world.store, "shop", ds, tmp_path / "rmc", task="reward",
                         style="conversational")
    row = _jsonl(rmc["files"]["test"])[0]
    assert [m["role"] for m in row["chosen"]] == ["user", "assistant"]
    assert row["chosen"][0] == row["rejected"][0]


def test_kto_sft_and_labels_columns_in_parquet(world: World, tmp_path: Path) -> None:
    kto = _build(world, "kto")
    out = export_dataset(world.store, "shop", kto, tmp_path / "kto", task="kto",
                         format="parquet")
    table = pq.read_table(out["files"]["train"])
    assert table.column_names == ["prompt", "completion", "label"]
    assert str(table.schema.field("label").type) == "bool"
    assert set(table.column("label").to_pylist()) == {True, False}
    sft = _build(world, "sft")
    plain = export_dataset(world.store, "shop", sft, tmp_path / "sft", task="sft",
                           format="parquet")
    assert pq.read_table(plain["files"]["train"]).column_names == ["prompt", "completion"]
    conv = export_dataset(world.store, "shop", sft, tmp_path / "sftc", task="sft",
                          style="conversational")
    msgs = _jsonl(conv["files"]["train"])[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[1]["content"].startswith("best answer")


def test_labels_export(world: World, tmp_path: Path) -> None:
    from .test_recipes import _aggregate

    _aggregate(world, {f"g{k}": ("billing" if k % 2 else "tech", 0.9) for k in range(8)})
    ds = world.build("labels", {"signal": "topic", "stratify": True, **COMMON},
                     name="labels")
    out = export_dataset(world.store, "shop", ds, tmp_path / "labels", task="labels")
    rows = _jsonl(out["files"]["train"])
    assert set(rows[0]) == {"text", "label"}
    assert {r["label"] for r in rows} == {"billing", "tech"}
    with pytest.raises(InvalidInput, match="task 'labels' has no conversational form"):
        export_dataset(world.store, "shop", ds, tmp_path / "x", task="labels",
                       style="conversational")


def test_card_and_one_split(world: World, tmp_path: Path) -> None:
    ds = _build(world, "preference")
    out = export_dataset(world.store, "shop", ds, tmp_path / "one", task="dpo", split="test")
    assert list(out["files"]) == ["test"]
    card = Path(out["card"]).read_text()
    assert "  - split: test\n    path: test.jsonl" in card and "train.jsonl" not in card
    assert ds.content_hash in card and "Exported for **dpo** training" in card
    assert out["content_hash"] == ds.content_hash and out["dataset"] == "preference@1"


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"task": "ppo"}, "task", "task must be one of dpo"),
    ({"task": "kto"}, "task", "task 'kto' needs a kto dataset"),
    ({"task": "dpo", "style": "chat"}, "style", "style must be one of"),
    ({"task": "dpo", "format": "csv"}, "format", "format must be one of"),
    ({"task": "dpo", "split": "dev"}, "split", "has no split 'dev'"),
])
def test_bad_export_requests(world: World, tmp_path: Path, kwargs: dict[str, Any],
                             field: str, message: str) -> None:
    ds = _build(world, "preference")
    with pytest.raises(InvalidInput, match=message) as exc:
        export_dataset(world.store, "shop", ds, tmp_path / "bad", **kwargs)
    assert exc.value.field == field


def test_kto_export_with_one_class_in_a_split_is_refused(world: World,
                                                         tmp_path: Path) -> None:
    w = world
    # train holds both classes, test only thumbs up
    for k, (fold, up) in enumerate((("train", True), ("train", False), ("test", True),
                                    ("test", True))):
        w.interaction(f"t{k}", f"fresh question {k}", f"fresh answer {k}",
                      attributes={"set": "x", "fold": fold})
        w.fb(f"t{k}", "thumbs", up, rater="r")
    ds = w.build("kto", {"signal": "thumbs", "attributes": {"set": "x"},
                         "split_attribute": "fold", "near_duplicates": False}, name="k")
    assert ds.counts["labels_by_split"]["test"] == {"true": 2}
    with pytest.raises(InvalidInput, match=r"test\.jsonl: every row has label True; kto needs "
                                           "both classes in every split"):
        export_dataset(w.store, "shop", ds, tmp_path / "kto", task="kto")
    assert not list((tmp_path / "kto").iterdir())  # nothing half-written
    out = export_dataset(w.store, "shop", ds, tmp_path / "kto", task="kto", split="train")
    assert out["rows"] == {"train": 2}
    with pytest.raises(InvalidInput, match="split 'validation' of k@1 is empty"):
        export_dataset(w.store, "shop", ds, tmp_path / "v", task="kto", split="validation")


def _result(tmp_path: Path, rows: list[Any], task: str = "kto",
            style: str = "standard") -> dict[str, Any]:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return {"task": task, "style": style, "format": "jsonl", "files": {"train": str(path)},
            "rows": {"train": len(rows)}}


def test_validation_catches_what_trl_would_refuse(tmp_path: Path) -> None:
    good = {"prompt": "p", "completion": "c", "label": True}
    bad_label = {"prompt": "p", "completion": "c", "label": "yes"}
    missing = {"prompt": "p", "label": True}
    with pytest.raises(InvalidInput, match="needs both classes"):
        validate_export(_result(tmp_path, [good, good]))
    with pytest.raises(InvalidInput, match="column 'label' does not follow"):
        validate_export(_result(tmp_path, [good, bad_label]))
    with pytest.raises(InvalidInput, match=r"row 1: columns \['label', 'prompt'\]"):
        validate_export(_result(tmp_path, [good, missing]))
    with pytest.raises(InvalidInput, match=r"train\.jsonl is empty"):
        validate_export(_result(tmp_path, []))
    result = _result(tmp_path, [good, {**good, "label": False}])
    result["rows"]["train"] = 3
    with pytest.raises(InvalidInput, match="holds 2 rows, 3 were written"):
        validate_export(result)
    conv = {"messages": [{"role": "assistant", "content": "x"},
                         {"role": "user", "content": "y"}]}
    with pytest.raises(InvalidInput, match="column 'messages'"):
        validate_export(_result(tmp_path, [conv], task="sft", style="conversational"))
    validate_export(_result(tmp_path, [good, {**good, "label": False}]))
    assert COLUMNS[("sft", "conversational")] == ("messages",)
