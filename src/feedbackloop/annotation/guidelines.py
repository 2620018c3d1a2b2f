"""Versioned guidelines: the Markdown text raters follow for one signal, with a rubric.

A guideline version is never edited. :func:`create_guideline` always inserts the next
version (1, 2, 3, ...), so every annotation can name the exact text its rater read (the
feedback's ``guideline_version`` is the version number as text).

The rubric lists the anchors of the scale: ``{"value", "label", "description",
"examples"}``. Each value must be a value of the signal: a whole number inside an ordinal
scale, a number inside a numeric scale, one of a categorical signal's labels, true/false
(or 1/0) for a binary signal, ``a``/``b``/``tie`` for a pairwise one. Text signals take
free anchors (their value is any text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from ..capture.prepare import checked_text, coerce_value
from ..capture.projects import Project, Signal, get_project, get_signal
from ..errors import Conflict, InvalidInput, NotFound
from ..governance import audit
from ..store import Store, as_utc, utcnow
from ..store.tables import guidelines

__all__ = [
    "MAX_BODY",
    "MAX_RUBRIC",
    "Guideline",
    "create_guideline",
    "get_guideline",
    "list_guidelines",
    "validate_rubric",
]

MAX_BODY = 200_000
MAX_RUBRIC = 100
MAX_EXAMPLES = 20
_MAX_TEXT = 5000


@dataclass(frozen=True)
class Guideline:
    id: int
    project_id: int
    signal: str
    signal_id: int
    version: int
    body: str
    rubric: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    created_by: str = ""
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "signal": self.signal, "version": self.version,
                "body": self.body, "rubric": [dict(a) for a in self.rubric],
                "note": self.note, "created_by": self.created_by,
                "created_at": self.created_at.isoformat() if self.created_at else None}


def _resolve(conn: Connection, project: Project | str) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)




def validate_rubric(signal: Signal, rubric: Any) -> list[dict[str, Any]]:
    """The rubric in its stored form (values typed as the signal's values); raises
    :class:`InvalidInput` naming the anchor and field that does not fit."""
    if rubric is None:
        return []
    if not isinstance(rubric, list):
        raise InvalidInput("rubric must be a list of anchors", field="rubric")
    if len(rubric) > MAX_RUBRIC:
        raise InvalidInput(f"a rubric has at most {MAX_RUBRIC} anchors", field="rubric")
    spec = signal.spec()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for k, anchor in enumerate(rubric):
        where = f"rubric[{k}]"
        if not isinstance(anchor, dict):
            raise InvalidInput(f"{where} must be an object with value, label, description "
                               "and examples", field=where)
        unknown = sorted(set(anchor) - {"value", "label", "description", "examples"})
        if unknown:
            raise InvalidInput(f"{where} has an unknown field {unknown[0]!r} (fields: value, "
                               "label, description, examples)", field=f"{where}.{unknown[0]}")
        if "value" not in anchor or anchor["value"] is None:
            raise InvalidInput(f"{where} needs a value", field=f"{where}.value")
        raw = anchor["value"]
        if isinstance(raw, float) and raw != raw:  # NaN
            raise InvalidInput(f"{where}.value must be a finite number", field=f"{where}.value")
        if not isinstance(raw, str | int | float | bool):
            raise InvalidInput(f"{where}.value must be a number, text or true/false",
                               field=f"{where}.value")
        if signal.type == "text":
            value: Any = checked_text(raw if isinstance(raw, str) else str(raw), f"{where}.value",
                               200, required=True)
        else:
            try:
                value, _num, _txt = coerce_value(spec, raw)
            except ValueError as exc:
                raise InvalidInput(f"{where}.value: {exc}", field=f"{where}.value") from None
        key = repr(value)
        if key in seen:
            raise InvalidInput(f"{where}.value {value!r} appears twice in the rubric",
                               field=f"{where}.value")
        seen.add(key)
        label = checked_text(anchor.get("label", ""), f"{where}.label", 200)
        description = checked_text(anchor.get("description", ""), f"{where}.description", _MAX_TEXT)
        examples = anchor.get("examples") or []
        if not isinstance(examples, list):
            raise InvalidInput(f"{where}.examples must be a list of texts",
                               field=f"{where}.examples")
        if len(examples) > MAX_EXAMPLES:
            raise InvalidInput(f"{where}.examples: at most {MAX_EXAMPLES} examples",
                               field=f"{where}.examples")
        ex = [checked_text(e, f"{where}.examples[{j}]", _MAX_TEXT, required=True)
              for j, e in enumerate(examples)]
        out.append({"value": value, "label": label, "description": description,
                    "examples": ex})
    return out


def _from_row(row: Any, signal: Signal) -> Guideline:
    return Guideline(id=int(row.id), project_id=int(row.project_id), signal=signal.name,
                     signal_id=signal.id, version=int(row.version), body=row.body,
                     rubric=list(row.rubric or []), note=row.note, created_by=row.created_by,
                     created_at=as_utc(row.created_at))


def _signal(conn: Connection, project: Project, name: str) -> Signal:
    if not isinstance(name, str) or not name or len(name) > 100 or "\x00" in name:
        raise InvalidInput("a signal name is 1-100 characters without NUL", field="signal")
    return get_signal(conn, project.id, name)


def create_guideline(store: Store, project: Project | str, signal: str, body: str,
                     rubric: list[dict[str, Any]] | None = None, *, note: str = "",
                     created_by: str = "") -> Guideline:
    """Add the next version of ``signal``'s guideline (version 1 when it has none)."""
    body = checked_text(body, "body", MAX_BODY, required=True)
    note = checked_text(note, "note", _MAX_TEXT)
    created_by = checked_text(created_by, "created_by", 100)
    for attempt in range(5):
        try:
            with store.transaction() as conn:
                proj = _resolve(conn, project)
                sig = _signal(conn, proj, signal)
                anchors = validate_rubric(sig, rubric)
                last = conn.execute(select(func.max(guidelines.c.version)).where(
                    guidelines.c.signal_id == sig.id)).scalar()
                version = int(last or 0) + 1
                new = conn.execute(guidelines.insert().values(
                    project_id=proj.id, signal_id=sig.id, version=version, body=body,
                    rubric=anchors, note=note, created_by=created_by,
                    created_at=utcnow())).inserted_primary_key
                gid = int(new[0])  # type: ignore[index]
                audit.record(conn, actor=created_by or "system", action="guideline.add",
                             entity_kind="guideline", entity_id=gid, project_id=proj.id,
                             after={"signal": sig.name, "version": version, "note": note,
                                    "rubric_anchors": len(anchors)})
                row = conn.execute(select(guidelines).where(guidelines.c.id == gid)).one()
                return _from_row(row, sig)
        except IntegrityError:
            # Another writer took this version number between our read and insert.
            if attempt == 4:
                raise Conflict(f"guideline of signal {signal!r} is being changed by someone "
                               "else; try again", field="signal") from None
    raise AssertionError("unreachable")


def get_guideline(conn: Connection, project: Project | str, signal: str,
                  version: int | None = None) -> Guideline:
    """One version of ``signal``'s guideline; the latest when ``version`` is None."""
    proj = _resolve(conn, project)
    sig = _signal(conn, proj, signal)
    q = select(guidelines).where(guidelines.c.signal_id == sig.id)
    if version is None:
        q = q.order_by(guidelines.c.version.desc()).limit(1)
    else:
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidInput("a guideline version is a whole number", field="version")
        q = q.where(guidelines.c.version == version)
    row = conn.execute(q).first()
    if row is None:
        if version is None:
            raise NotFound(f"signal {signal!r} has no guideline yet", field="signal")
        raise NotFound(f"signal {signal!r} has no guideline version {version}",
                       field="version")
    return _from_row(row, sig)


def list_guidelines(conn: Connection, project: Project | str, signal: str) -> list[Guideline]:
    """Every version of ``signal``'s guideline, newest first."""
    proj = _resolve(conn, project)
    sig = _signal(conn, proj, signal)
    rows = conn.execute(select(guidelines).where(guidelines.c.signal_id == sig.id)
                        .order_by(guidelines.c.version.desc())).all()
    return [_from_row(r, sig) for r in rows]


def latest_versions(conn: Connection, project_id: int) -> dict[int, int]:
    """signal id → its latest guideline version, for the signals that have one."""
    g = guidelines
    rows = conn.execute(select(g.c.signal_id, func.max(g.c.version))
                        .where(g.c.project_id == project_id).group_by(g.c.signal_id)).all()
    return {int(s): int(v) for s, v in rows}
