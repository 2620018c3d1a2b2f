"""``feedbackloop dataset build|list|show|export``: versioned datasets built from feedback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.markdown import Markdown
from rich.table import Table

from ..errors import InvalidInput
from .common import Db, Json, ProjectName, echo_json, err, open_store, out

__all__ = ["parse_param", "register"]

RecipeName = Literal["preference", "sft", "kto", "labels"]
TaskName = Literal["dpo", "reward", "kto", "sft", "labels"]
StyleName = Literal["standard", "conversational"]
ExportFormat = Literal["jsonl", "parquet"]


def _value(text: str) -> Any:
    # Objects and lists are JSON; everything else stays text and the recipe's parameter
    # model converts it ("0.5" to a number, "true" to a boolean).
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError:
            raise InvalidInput(f"--param value {text!r} is not valid JSON",
                               field="param") from None
    if stripped == "null":
        return None
    return text


def parse_param(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` options into recipe parameters; ``a.b=v`` sets key ``b`` of object
    ``a`` (``--param attributes.locale=de --param splits.train=0.9``)."""
    params: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"a parameter is KEY=VALUE, got {pair!r}", field="param")
        head, dot, sub = key.partition(".")
        if dot:
            target = params.setdefault(head, {})
            if not isinstance(target, dict) or not sub:
                raise InvalidInput(f"parameter {head!r} is given as a value and as an "
                                   "object", field="param")
            target[sub] = _value(value)
        else:
            params[key] = _value(value)
    return params


def build_command(
    name: Annotated[str, typer.Argument(help="Dataset name; each build is a new version.")],
    project: ProjectName,
    recipe: Annotated[RecipeName, typer.Option("--recipe", help="The recipe to run.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", metavar="KEY=VALUE",
        help="A recipe parameter; repeat for several. KEY.SUB=VALUE sets one key of an "
             "object (attributes.locale=de, splits.train=0.9); {...} or [...] is JSON.")
    ] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Build the next version of a dataset from the project's feedback."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    params = parse_param(param)
    with open_store(db) as (_settings, store):
        from ..improve.datasets import build_dataset

        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=err(), transient=True, disable=json) as bar:
            task = bar.add_task("reading feedback", total=5)

            def progress(stage: str, done: int, total: int) -> None:
                bar.update(task, description=stage, completed=done, total=total)

            ds = build_dataset(store, project, name, recipe, params, created_by="cli",
                               progress=progress)
    if json:
        echo_json(ds.to_dict())
        return
    c = ds.counts
    splits = ", ".join(f"{s} {n:,}" for s, n in c["splits"].items())
    console = out()
    console.print(f"Built [bold]{ds.ref}[/] ({ds.recipe}): {c['rows']:,} rows ({splits}) "
                  f"from {c['feedback'].get('used', 0):,} feedback records.")
    console.print(f"Content hash {ds.content_hash}")
    dropped = {**c.get("dropped", {}),
               **{f"feedback {k}": v for k, v in c["feedback"].get("dropped", {}).items()}}
    if dropped:
        console.print("Dropped: " + ", ".join(f"{k.replace('_', ' ')} {v:,}"
                                              for k, v in dropped.items()))


def list_command(project: ProjectName, db: Db = None, json: Json = False) -> None:
    """List every version of every dataset of the project."""
    with open_store(db) as (_settings, store), store.read() as conn:
        from ..improve.datasets import list_datasets

        found = list_datasets(conn, project)
    if json:
        echo_json([d.to_dict() for d in found])
        return
    if not found:
        out().print("No datasets yet: build one with `feedbackloop dataset build`.")
        return
    table = Table("name", "version", "recipe", "rows", "splits", "hash", "created")
    for d in found:
        table.add_row(d.name, str(d.version), d.recipe, f"{d.counts['rows']:,}",
                      " ".join(f"{s}:{n}" for s, n in d.counts["splits"].items()),
                      d.content_hash[:12], d.created_at.strftime("%Y-%m-%d %H:%M"))
    out().print(table)


def show_command(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    project: ProjectName,
    version: Annotated[int | None, typer.Option("--version",
                                                help="Which version (default: latest).")
                       ] = None,
    rows: Annotated[int, typer.Option("--rows", min=0, max=1000,
                                      help="Sample rows to show.")] = 5,
    split: Annotated[str | None, typer.Option("--split", help="Sample from this split.")
                     ] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Show a dataset: its counts, its card and sample rows with their feedback ids."""
    with open_store(db) as (_settings, store), store.read() as conn:
        from ..improve.datasets import get_dataset, iter_rows, render_card

        ds = get_dataset(conn, project, name, version)
        sample = list(iter_rows(conn, ds, split, limit=rows)) if rows else []
    if json:
        echo_json({**ds.to_dict(), "rows": sample})
        return
    console = out()
    console.print(Markdown(render_card(ds)))
    if sample:
        table = Table("#", "split", "row", "feedback ids", show_lines=True)
        for r in sample:
            data = orjson.dumps(r["data"], option=orjson.OPT_INDENT_2).decode()
            table.add_row(str(r["position"]), r["split"], data, "\n".join(r["feedback_ids"]))
        console.print(table)


def export_command(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    project: ProjectName,
    task: Annotated[TaskName, typer.Option("--task", help="The training task's columns.")],
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR",
                                          help="Folder for the split files and README.md.")],
    style: Annotated[StyleName, typer.Option(
        "--style", help="Strings, or role/content message lists.")] = "standard",
    fmt: Annotated[ExportFormat, typer.Option("--format", help="File format.")] = "jsonl",
    version: Annotated[int | None, typer.Option("--version",
                                                help="Which version (default: latest).")
                       ] = None,
    split: Annotated[str | None, typer.Option("--split", help="Export this split only.")
                     ] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Export a dataset for TRL / Hugging Face datasets, one file per split, with a card;
    the files are checked after writing."""
    with open_store(db) as (_settings, store):
        from ..improve.datasets import get_dataset
        from ..improve.exports import export_dataset

        with store.read() as conn:
            ds = get_dataset(conn, project, name, version)
        result = export_dataset(store, project, ds, out_dir, task=task, style=style,
                                format=fmt, split=split)
    if json:
        echo_json(result)
        return
    console = out()
    console.print(f"Exported [bold]{result['dataset']}[/] for {task} ({style}, {fmt}):")
    for s, path in result["files"].items():
        console.print(f"  {s}: {result['rows'][s]:,} rows -> {path}")
    console.print(f"  card: {result['card']}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Versioned datasets built from feedback, with row lineage.",
                        no_args_is_help=True)
    group.command("build")(build_command)
    group.command("list")(list_command)
    group.command("show")(show_command)
    group.command("export")(export_command)
    app.add_typer(group, name="dataset")
