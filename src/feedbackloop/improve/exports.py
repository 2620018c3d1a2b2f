"""Exports in the column conventions of TRL and Hugging Face ``datasets``.

| task | recipe | standard columns | conversational columns |
|---|---|---|---|
| dpo | preference | prompt, chosen, rejected (strings) | the same, as message lists |
| reward | preference | chosen, rejected: prompt + answer (implicit prompt) | [user, assistant] |
| kto | kto | prompt, completion, label (bool) | prompt, completion as messages, label |
| sft | sft | prompt, completion | messages: [user, assistant] |
| labels | labels | text, label | (none) |

A message list is ``[{"role": "user", "content": ...}]`` for a prompt and
``[{"role": "assistant", "content": ...}]`` for an answer. One file per split (JSON Lines or
Parquet) and a dataset card (``README.md``, whose YAML header lists the split files so that
``datasets.load_dataset(folder)`` reads them). After writing, the exporter reads its own
files back and checks them: the columns and their types, the row counts, no empty file,
both label classes in every KTO file and two classes in every labels file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ..capture.projects import Project
from ..errors import InvalidInput
from ..store import Store
from .datasets import Dataset, _resolve, iter_rows, render_card

__all__ = ["COLUMNS", "FORMATS", "STYLES", "TASKS", "export_dataset", "validate_export"]

TASKS = {"dpo": "preference", "reward": "preference", "kto": "kto", "sft": "sft",
         "labels": "labels"}
STYLES = ("standard", "conversational")
FORMATS = ("jsonl", "parquet")
COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    ("dpo", "standard"): ("prompt", "chosen", "rejected"),
    ("dpo", "conversational"): ("prompt", "chosen", "rejected"),
    ("reward", "standard"): ("chosen", "rejected"),
    ("reward", "conversational"): ("chosen", "rejected"),
    ("kto", "standard"): ("prompt", "completion", "label"),
    ("kto", "conversational"): ("prompt", "completion", "label"),
    ("sft", "standard"): ("prompt", "completion"),
    ("sft", "conversational"): ("messages",),
    ("labels", "standard"): ("text", "label"),
}
REWARD_SEPARATOR = "\n\n"


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _converter(task: str, style: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    conv = style == "conversational"
    if task == "dpo":
        if conv:
            return lambda d: {"prompt": _user(d["prompt"]), "chosen": _assistant(d["chosen"]),
                              "rejected": _assistant(d["rejected"])}
        return lambda d: {"prompt": d["prompt"], "chosen": d["chosen"],
                          "rejected": d["rejected"]}
    if task == "reward":
        if conv:
            return lambda d: {"chosen": _user(d["prompt"]) + _assistant(d["chosen"]),
                              "rejected": _user(d["prompt"]) + _assistant(d["rejected"])}
        sep = REWARD_SEPARATOR
        return lambda d: {"chosen": d["prompt"] + sep + d["chosen"],
                          "rejected": d["prompt"] + sep + d["rejected"]}
    if task == "kto":
        if conv:
            return lambda d: {"prompt": _user(d["prompt"]),
                              "completion": _assistant(d["completion"]),
                              "label": bool(d["label"])}
        return lambda d: {"prompt": d["prompt"], "completion": d["completion"],
                          "label": bool(d["label"])}
    if task == "sft":
        if conv:
            return lambda d: {"messages": _user(d["prompt"]) + _assistant(d["completion"])}
        return lambda d: {"prompt": d["prompt"], "completion": d["completion"]}
    return lambda d: {"text": d["text"], "label": d["label"]}


def _check_choice(value: str, choices: tuple[str, ...] | dict[str, str], field: str) -> None:
    if value not in choices:
        raise InvalidInput(f"{field} must be one of {', '.join(choices)}, not {value!r}",
                           field=field)


def export_dataset(store: Store, project: Project | str, dataset: Dataset, out: Path | str,
                   *, task: str, style: str = "standard", format: str = "jsonl",
                   split: str | None = None) -> dict[str, Any]:
    """Write the dataset's splits (or one ``split``) to folder ``out`` for ``task`` and
    check the files. Returns ``{"files": {split: path}, "rows": {split: n}, "card": path,
    "task", "style", "format", "dataset", "content_hash"}``."""
    _check_choice(task, TASKS, "task")
    _check_choice(style, STYLES, "style")
    _check_choice(format, FORMATS, "format")
    if TASKS[task] != dataset.recipe:
        raise InvalidInput(f"task {task!r} needs a {TASKS[task]} dataset; {dataset.ref} was "
                           f"built with the {dataset.recipe} recipe", field="task")
    if (task, style) not in COLUMNS:
        raise InvalidInput(f"task {task!r} has no {style} form", field="style")
    splits = dataset.counts.get("splits", {})
    if split is not None and split not in splits:
        raise InvalidInput(f"dataset {dataset.ref} has no split {split!r}; splits: "
                           f"{', '.join(splits)}", field="split")
    wanted = [split] if split is not None else [s for s, n in splits.items() if n > 0]
    if split is not None and not splits[split]:
        raise InvalidInput(f"split {split!r} of {dataset.ref} is empty", field="split")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    convert = _converter(task, style)
    files: dict[str, str] = {}
    rows: dict[str, int] = {}
    with store.read() as conn:
        _resolve(conn, project)
        for s in wanted:
            path = folder / f"{s}.{format}"
            records = [convert(r["data"]) for r in iter_rows(conn, dataset, s)]
            if format == "jsonl":
                with path.open("wb") as fh:
                    for rec in records:
                        fh.write(orjson.dumps(rec))
                        fh.write(b"\n")
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.Table.from_pylist(records), path)
            files[s] = path.name
            rows[s] = len(records)
    card = folder / "README.md"
    card.write_text(render_card(dataset, files=files, task=task, style=style),
                    encoding="utf-8")
    result: dict[str, Any] = {
        "dataset": dataset.ref, "content_hash": dataset.content_hash, "task": task,
        "style": style, "format": format,
        "files": {s: str(folder / name) for s, name in files.items()}, "rows": rows,
        "card": str(card)}
    try:
        validate_export(result)
    except InvalidInput:
        # nothing half-written: an export that fails its own check leaves no files
        for name in [*result["files"].values(), result["card"]]:
            Path(name).unlink(missing_ok=True)
        raise
    return result


def _read(path: Path, format: str) -> list[dict[str, Any]]:
    if format == "jsonl":
        with path.open("rb") as fh:
            return [orjson.loads(line) for line in fh if line.strip()]
    import pyarrow.parquet as pq

    return list(pq.read_table(path).to_pylist())


def _is_messages(value: Any, roles: tuple[str, ...]) -> bool:
    return (isinstance(value, list) and len(value) == len(roles)
            and all(isinstance(m, dict) and set(m) == {"role", "content"}
                    and m["role"] == role and isinstance(m["content"], str)
                    for m, role in zip(value, roles, strict=True)))


_ROLES = {"prompt": ("user",), "chosen": ("assistant",), "rejected": ("assistant",),
          "completion": ("assistant",)}


def validate_export(result: dict[str, Any]) -> None:
    """Read the written files back and check them against the task's conventions; raises
    InvalidInput naming the file, the row and the column."""
    task, style, format = result["task"], result["style"], result["format"]
    columns = COLUMNS[(task, style)]
    if not result["files"]:
        raise InvalidInput("the export wrote no file: every split is empty", field="split")
    for split, name in result["files"].items():
        path = Path(name)
        records = _read(path, format)
        where = f"{path.name}"
        if not records:
            raise InvalidInput(f"{where} is empty", field="split")
        if len(records) != result["rows"][split]:
            raise InvalidInput(f"{where} holds {len(records)} rows, "
                               f"{result['rows'][split]} were written", field="split")
        for i, rec in enumerate(records):
            if tuple(sorted(rec)) != tuple(sorted(columns)):
                raise InvalidInput(f"{where} row {i}: columns {sorted(rec)}, expected "
                                   f"{sorted(columns)}", field="columns", row=i)
            for col in columns:
                value = rec[col]
                if col == "label":
                    ok = isinstance(value, bool) if task == "kto" else value is not None
                elif col == "messages" or (style == "conversational" and task == "reward"):
                    ok = _is_messages(value, ("user", "assistant"))
                elif style == "conversational":
                    ok = _is_messages(value, _ROLES[col])
                else:
                    ok = isinstance(value, str)
                if not ok:
                    raise InvalidInput(f"{where} row {i}: column {col!r} does not follow the "
                                       f"{task} {style} convention", field=col, row=i)
        if task in ("kto", "labels"):
            classes = {str(r["label"]) for r in records}
            if len(classes) < 2:
                raise InvalidInput(
                    f"{where}: every row has label {classes.pop()}; {task} needs both "
                    "classes in every split (build with stratify=true)", field="label")
