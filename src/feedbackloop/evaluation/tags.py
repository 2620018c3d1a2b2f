"""Root causes of discrepancies: tags on interactions, and the knowledge base they build.

A tag says why the human and the metric disagreed on an interaction (or on a set of them,
tagged at once with one cause and note). The knowledge base counts the tags by cause and
by ISO week, with their notes, so a team sees which causes dominate and whether fixing
them worked.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from ..capture.prepare import checked_text
from ..capture.projects import Project, get_project
from ..errors import InvalidInput, NotFound
from ..store import Store, as_utc, utcnow
from ..store.tables import discrepancy_tags, evaluations, interactions

__all__ = ["CAUSES", "MAX_NOTE", "MAX_TAGGED", "knowledge_base", "tag_discrepancy", "tags_for"]

CAUSES = ("metric_error", "guideline_gap", "rater_error", "data_gap", "prompt_issue",
          "model_error", "other")
"""Why two channels disagreed: the metric was wrong; the guideline did not cover the case;
the rater was wrong; the data lacked what was needed; the prompt misled; the model was
wrong (and the metric or the rater missed it); something else."""
MAX_NOTE = 5000
MAX_TAGGED = 1000
_NOTES_PER_CAUSE = 50




def tag_discrepancy(store: Store, project: Project | str, interaction_client_ids: list[str],
                    human_signal: str, metric_signal: str, cause: str, note: str = "",
                    created_by: str = "", evaluation_id: int | None = None) -> list[int]:
    """Tag the interactions' discrepancy between two signals with a cause; returns the
    new tag ids (one per interaction, in the order given)."""
    if cause not in CAUSES:
        raise InvalidInput(f"cause must be one of {', '.join(CAUSES)}", field="cause")
    if not interaction_client_ids:
        raise InvalidInput("name at least one interaction", field="interaction")
    if len(interaction_client_ids) > MAX_TAGGED:
        raise InvalidInput(f"at most {MAX_TAGGED} interactions in one tagging",
                           field="interaction")
    for cid in interaction_client_ids:
        checked_text(cid, "interaction", 200, required=True)
    checked_text(human_signal, "human", 100, required=True)
    checked_text(metric_signal, "metric", 100, required=True)
    checked_text(note, "note", MAX_NOTE)
    checked_text(created_by, "created_by", 100)
    wanted = list(dict.fromkeys(interaction_client_ids))
    with store.transaction() as conn:
        proj = project if isinstance(project, Project) else get_project(conn, project)
        i = interactions
        found = {cid: pk for pk, cid in conn.execute(
            select(i.c.id, i.c.client_id).where(i.c.project_id == proj.id,
                                                i.c.client_id.in_(wanted)))}
        missing = [cid for cid in wanted if cid not in found]
        if missing:
            raise NotFound(f"no interaction {missing[0]!r} in project {proj.name!r}",
                           field="interaction")
        if evaluation_id is not None:
            owner = conn.execute(select(evaluations.c.project_id).where(
                evaluations.c.id == evaluation_id)).scalar_one_or_none()
            if owner != proj.id:
                raise NotFound(f"no evaluation {evaluation_id} in project {proj.name!r}",
                               field="evaluation")
        now = utcnow()
        ids = []
        for cid in wanted:
            new = conn.execute(discrepancy_tags.insert().values(
                project_id=proj.id, interaction_id=found[cid], evaluation_id=evaluation_id,
                human_signal=human_signal, metric_signal=metric_signal, cause=cause,
                note=note, created_by=created_by, created_at=now)).inserted_primary_key
            ids.append(int(new[0]))  # type: ignore[index]
    return ids


def _week(ts: datetime) -> str:
    """The Monday that starts the ISO week of ``ts`` (UTC), as a date."""
    day = ts.date()
    return (day - timedelta(days=day.weekday())).isoformat()


def knowledge_base(store: Store, project: Project | str, *, conn: Connection | None = None
                   ) -> dict[str, Any]:
    """Tags by cause (with counts and the newest notes) and counts by ISO week and cause."""
    if conn is None:
        with store.read() as own:
            return knowledge_base(store, project, conn=own)
    proj = project if isinstance(project, Project) else get_project(conn, project)
    t, i = discrepancy_tags, interactions
    rows = conn.execute(
        select(t.c.id, t.c.cause, t.c.note, t.c.created_by, t.c.created_at, t.c.human_signal,
               t.c.metric_signal, t.c.evaluation_id, i.c.client_id)
        .join(i, i.c.id == t.c.interaction_id)
        .where(t.c.project_id == proj.id)
        .order_by(t.c.created_at.desc(), t.c.id.desc())).all()
    by_cause: Counter[str] = Counter()
    weekly: dict[str, Counter[str]] = defaultdict(Counter)
    notes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        created = as_utc(r.created_at)
        assert created is not None
        by_cause[r.cause] += 1
        weekly[_week(created)][r.cause] += 1
        if len(notes[r.cause]) < _NOTES_PER_CAUSE:
            notes[r.cause].append({
                "id": int(r.id), "interaction": r.client_id, "note": r.note,
                "human_signal": r.human_signal, "metric_signal": r.metric_signal,
                "evaluation_id": r.evaluation_id, "created_by": r.created_by,
                "created_at": created.isoformat()})
    return {
        "project": proj.name, "total": len(rows),
        "causes": [{"cause": c, "count": by_cause.get(c, 0), "tags": notes.get(c, [])}
                   for c in CAUSES],
        "weeks": [{"week": w, "counts": {c: weekly[w].get(c, 0) for c in CAUSES},
                   "total": sum(weekly[w].values())} for w in sorted(weekly)],
    }


def tags_for(conn: Connection, project: Project, evaluation_id: int
             ) -> dict[str, dict[str, list[str]]]:
    """Causes tagged on one evaluation: metric signal → interaction client id → causes."""
    t, i = discrepancy_tags, interactions
    out: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for cid, cause, metric in conn.execute(
            select(i.c.client_id, t.c.cause, t.c.metric_signal)
            .join(i, i.c.id == t.c.interaction_id)
            .where(t.c.project_id == project.id, t.c.evaluation_id == evaluation_id)
            .order_by(t.c.id)):
        out[metric].setdefault(cid, []).append(cause)
    return dict(out)
