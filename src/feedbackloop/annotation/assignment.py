"""Assignment: serving a campaign's items to its raters, with leases and hidden gold.

An item goes to ``overlap`` distinct raters and never twice to the same rater (one
``assignments`` row per item and rater). ``campaign_items.n_active`` counts the
assignments that hold a place: leased (and not yet expired) or done. A rater claims an
item with a conditional ``UPDATE ... SET n_active = n_active + 1 WHERE n_active <
overlap``, so concurrent raters on several web servers never exceed the overlap; a lost
race moves on to the next item.

A lease lasts the campaign's ``lease_minutes``. Leases past their end are expired by the
next call to :func:`next_item` on the campaign (status ``expired``, the item's place is
freed), so an abandoned item returns to the pool; the same rater may get it again. A late
submit on a lease not yet expired by the sweep is accepted.

With probability ``gold_rate`` (drawn from the campaign's seed, the rater and the number
of items the rater has finished, so a replay is exact) the next item is a gold item the
rater has not seen. Gold items are served to every rater and are never marked as gold in
what the rater sees.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, exists, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from ..capture.ingest import Ingestor
from ..capture.projects import Project, get_project
from ..errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ..settings import Settings, load_settings
from ..store import Store, as_utc, utcnow
from ..store.tables import (
    annotation_links,
    assignments,
    campaign_items,
    feedback,
    interactions,
    signals,
)
from .campaigns import Campaign, resolve_campaign

__all__ = ["MAX_REASON", "WorkItem", "feedback_id", "next_item", "rater_progress", "skip",
           "submit"]

MAX_REASON = 1000
MAX_TEXT = 100_000
_HELD = ("leased", "done", "skipped")  # a rater's row in one of these bars the item for them


@dataclass(frozen=True)
class WorkItem:
    """What a rater sees for one assignment. ``interaction_b`` and ``swapped`` concern
    pairwise campaigns: ``swapped`` means B is shown on the left. Whether the item is gold
    is deliberately not part of it."""

    assignment_id: int
    campaign: str
    item_id: int
    position: int
    interaction: dict[str, Any]
    interaction_b: dict[str, Any] | None
    swapped: bool
    signals: list[dict[str, Any]]
    expires_at: datetime

    @property
    def left(self) -> dict[str, Any]:
        return self.interaction_b if self.swapped and self.interaction_b else self.interaction

    @property
    def right(self) -> dict[str, Any] | None:
        if self.interaction_b is None:
            return None
        return self.interaction if self.swapped else self.interaction_b

    def to_dict(self) -> dict[str, Any]:
        return {"assignment_id": self.assignment_id, "campaign": self.campaign,
                "item_id": self.item_id, "position": self.position,
                "interaction": dict(self.interaction),
                "interaction_b": dict(self.interaction_b) if self.interaction_b else None,
                "swapped": self.swapped, "left": dict(self.left),
                "right": dict(self.right) if self.right else None,
                "signals": [dict(s) for s in self.signals],
                "expires_at": self.expires_at.isoformat()}


def feedback_id(campaign_id: int, assignment_id: int, signal: str) -> str:
    """The client id of the feedback row an annotation becomes."""
    return f"campaign-{campaign_id}-a{assignment_id}-{signal}"


def _resolve(conn: Connection, project: Project | str) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _check_rater(camp: Campaign, rater: str) -> None:
    if not isinstance(rater, str) or rater not in camp.raters:
        raise PermissionDenied(f"{rater!r} is not a rater of campaign {camp.name!r}",
                               field="rater")


def _db_now(conn: Connection, now: datetime) -> datetime:
    # SQLite keeps naive UTC text; PostgreSQL compares aware values.
    return now.replace(tzinfo=None) if conn.dialect.name == "sqlite" else now


def _interaction(row: Any) -> dict[str, Any]:
    return {"id": row.client_id, "input": row.input, "output": row.output,
            "context": row.context, "reference": row.reference,
            "model_version": row.model_version, "attributes": row.attributes}


def _signal_info(conn: Connection, camp: Campaign) -> list[dict[str, Any]]:
    ids = [s["signal_id"] for s in camp.signals]
    rows = {r.id: r for r in conn.execute(select(signals).where(signals.c.id.in_(ids)))}
    out = []
    for s in camp.signals:
        r = rows.get(s["signal_id"])
        out.append({"name": s["signal"], "type": s["type"],
                    "scale_min": r.scale_min if r is not None else None,
                    "scale_max": r.scale_max if r is not None else None,
                    "labels": list(r.labels) if r is not None and r.labels else None,
                    "description": r.description if r is not None else "",
                    "guideline_version": s["guideline_version"]})
    return out


def _work_item(conn: Connection, camp: Campaign, assignment: Any) -> WorkItem:
    ci = campaign_items
    item = conn.execute(select(ci.c.id, ci.c.position, ci.c.interaction_id,
                               ci.c.interaction_b_id).where(ci.c.id == assignment.item_id)
                        ).one()
    i = interactions
    wanted = [item.interaction_id] + ([item.interaction_b_id] if item.interaction_b_id
                                      else [])
    rows = {r.id: r for r in conn.execute(
        select(i.c.id, i.c.client_id, i.c.input, i.c.output, i.c.context, i.c.reference,
               i.c.model_version, i.c.attributes).where(i.c.id.in_(wanted)))}
    expires = as_utc(assignment.expires_at)
    assert expires is not None
    return WorkItem(
        assignment_id=int(assignment.id), campaign=camp.name, item_id=int(item.id),
        position=int(item.position), interaction=_interaction(rows[item.interaction_id]),
        interaction_b=_interaction(rows[item.interaction_b_id])
        if item.interaction_b_id else None,
        swapped=bool(assignment.swapped), signals=_signal_info(conn, camp),
        expires_at=expires)


def _expire_overdue(conn: Connection, camp: Campaign, now: datetime) -> int:
    """Expire the campaign's leases past their end; each frees its item's place once."""
    a, ci = assignments, campaign_items
    overdue = conn.execute(select(a.c.id, a.c.item_id).where(
        a.c.campaign_id == camp.id, a.c.status == "leased",
        a.c.expires_at <= _db_now(conn, now)).order_by(a.c.id)).all()
    n = 0
    for aid, item_id in overdue:
        # Conditional: of two sweeps racing on one lease, only one frees its place.
        hit = conn.execute(a.update().where(a.c.id == aid, a.c.status == "leased")
                           .values(status="expired")).rowcount
        if hit:
            conn.execute(ci.update().where(ci.c.id == item_id)
                         .values(n_active=ci.c.n_active - 1))
            n += 1
    return n


def _finished(conn: Connection, camp: Campaign, rater: str) -> int:
    a = assignments
    return int(conn.execute(select(func.count()).where(
        a.c.campaign_id == camp.id, a.c.rater == rater,
        a.c.status.in_(("done", "skipped")))).scalar_one())


def _serve_gold(camp: Campaign, rater: str, finished: int) -> tuple[bool, np.random.Generator]:
    rng = np.random.default_rng([camp.seed, zlib.crc32(rater.encode()), finished])
    return bool(camp.gold_rate > 0 and rng.random() < camp.gold_rate), rng


def _lease(conn: Connection, camp: Campaign, rater: str, item_id: int, now: datetime,
           rng: np.random.Generator) -> int:
    """Insert (or re-lease an expired) assignment row of this rater on this item."""
    a = assignments
    swapped = bool(rng.random() < 0.5) if camp.pairwise else False
    values = {"status": "leased", "swapped": swapped, "leased_at": now,
              "expires_at": now + timedelta(minutes=camp.lease_minutes),
              "finished_at": None, "skip_reason": None}
    old = conn.execute(select(a.c.id, a.c.status).where(
        a.c.item_id == item_id, a.c.rater == rater)).first()
    if old is not None:
        if old.status != "expired":
            raise IntegrityError("assignment exists", None, Exception(old.status))
        conn.execute(a.update().where(a.c.id == old.id).values(**values))
        return int(old.id)
    new = conn.execute(a.insert().values(campaign_id=camp.id, item_id=item_id, rater=rater,
                                         **values)).inserted_primary_key
    return int(new[0])  # type: ignore[index]


def _claim_gold(conn: Connection, camp: Campaign, rater: str, now: datetime,
                rng: np.random.Generator) -> int | None:
    ci, a = campaign_items, assignments
    unseen = conn.execute(select(ci.c.id).where(
        ci.c.campaign_id == camp.id, ci.c.is_gold.is_(True),
        ~exists().where(a.c.item_id == ci.c.id, a.c.rater == rater,
                        a.c.status.in_(_HELD))).order_by(ci.c.position)).scalars().all()
    if not unseen:
        return None
    item_id = int(unseen[int(rng.integers(len(unseen)))])
    conn.execute(ci.update().where(ci.c.id == item_id).values(n_active=ci.c.n_active + 1))
    return _lease(conn, camp, rater, item_id, now, rng)


def _next_free(conn: Connection, camp: Campaign, rater: str, after: int, *,
               hashed: bool) -> Any:
    """The lowest-position regular item after ``after`` with a free place that this rater
    has not held.

    One index-ordered probe per fill level (``n_active`` = 0, 1, ..., overlap - 1), so the
    database walks the (campaign, is_gold, n_active, position) index in order and stops at
    the first hit instead of sorting every open item. With ``hashed`` (a walk from the
    start, on PostgreSQL) the rater's items are excluded by ``NOT IN``, evaluated against
    one hash of them rather than by one index probe per item passed."""
    ci, a = campaign_items, assignments
    mine = select(a.c.item_id).where(a.c.campaign_id == camp.id, a.c.rater == rater,
                                     a.c.status.in_(_HELD))
    best = None
    for level in range(camp.overlap):
        if level == 0 or not hashed or conn.dialect.name != "postgresql":
            unheld = ~exists().where(a.c.item_id == ci.c.id, a.c.rater == rater,
                                     a.c.status.in_(_HELD))
        else:
            unheld = ci.c.id.not_in(mine.scalar_subquery())
        q = select(ci.c.id, ci.c.position).where(
            ci.c.campaign_id == camp.id, ci.c.is_gold.is_(False), ci.c.n_active == level,
            ci.c.position > after, unheld)
        if best is not None:
            q = q.where(ci.c.position < best.position)
        row = conn.execute(q.order_by(ci.c.position).limit(1)).first()
        if row is not None:
            best = row
    return best


def _latest_position(conn: Connection, camp: Campaign, rater: str) -> int:
    """The position of the rater's latest regular item (-1 before the first)."""
    a, ci = assignments, campaign_items
    pos = conn.execute(select(ci.c.position).select_from(a.join(ci, ci.c.id == a.c.item_id))
                       .where(a.c.campaign_id == camp.id, a.c.rater == rater,
                              ci.c.is_gold.is_(False))
                       .order_by(a.c.id.desc()).limit(1)).scalar()
    return -1 if pos is None else int(pos)


def _claim_regular(conn: Connection, camp: Campaign, rater: str, now: datetime,
                   rng: np.random.Generator) -> int | None:
    """Claim the next regular item for the rater.

    A rater always got the first item free for them, so the items before their latest one
    were taken then; the walk starts after it and never passes over the rater's own
    history (a rater 10,000 items ahead of the others would otherwise pass 10,000 items
    on every call). Items before it that were freed since (a lease expired, a rater
    skipped) are found by a walk from the start when nothing is left after it, and by the
    other raters, whose walks are further back, before that."""
    ci = campaign_items
    latest = _latest_position(conn, camp, rater)
    for start in ((latest, -1) if latest >= 0 else (-1,)):
        after = start
        for _ in range(1000):
            row = _next_free(conn, camp, rater, after, hashed=start < 0)
            if row is None:
                break
            hit = conn.execute(ci.update().where(ci.c.id == row.id,
                                                 ci.c.n_active < camp.overlap)
                               .values(n_active=ci.c.n_active + 1)).rowcount
            if hit:
                return _lease(conn, camp, rater, int(row.id), now, rng)
            # Another rater took the last place: try the next items.
            after = int(row.position)
        else:
            raise Conflict("the campaign is too busy to serve an item; try again",
                           field="campaign")
    return None


def _open_lease(conn: Connection, camp: Campaign, rater: str, now: datetime) -> Any:
    a = assignments
    return conn.execute(select(a).where(
        a.c.campaign_id == camp.id, a.c.rater == rater, a.c.status == "leased",
        a.c.expires_at > _db_now(conn, now)).order_by(a.c.id).limit(1)).first()


def _retrying(call: Any) -> Any:
    """Run ``call`` again on a lost race (a unique key taken, a serialisation or lock
    failure): each attempt is a fresh transaction."""
    for attempt in range(8):
        try:
            return call()
        except (IntegrityError, OperationalError):
            if attempt == 7:
                raise
    raise AssertionError("unreachable")


def next_item(store: Store, project: Project | str, campaign: Campaign | str | int,
              rater: str, *, now: datetime | None = None) -> WorkItem | None:
    """The rater's current item: their open lease, else a newly leased one (hidden gold
    with probability ``gold_rate``); None when nothing is left for this rater."""
    now = as_utc(now) if now is not None else utcnow()
    assert now is not None

    def attempt() -> WorkItem | None:
        with store.transaction() as conn:
            proj = _resolve(conn, project)
            camp = resolve_campaign(conn, proj, campaign)
            _check_rater(camp, rater)
            if not camp.active:
                raise Conflict(f"campaign {camp.name!r} is closed", field="campaign")
            held = _open_lease(conn, camp, rater, now)
            if held is not None:
                return _work_item(conn, camp, held)
            _expire_overdue(conn, camp, now)
            # The draws (gold or not, pairwise sides) need the rater's count of
            # finished items; a campaign with neither skips counting them.
            needs_count = camp.gold_rate > 0 or camp.pairwise
            gold, rng = _serve_gold(camp, rater,
                                    _finished(conn, camp, rater) if needs_count else 0)
            aid = None
            if gold:
                aid = _claim_gold(conn, camp, rater, now, rng)
            if aid is None:
                aid = _claim_regular(conn, camp, rater, now, rng)
            if aid is None:
                return None
            row = conn.execute(select(assignments).where(assignments.c.id == aid)).one()
            return _work_item(conn, camp, row)

    result: WorkItem | None = _retrying(attempt)
    return result


def _assignment(conn: Connection, camp: Campaign, rater: str, assignment_id: int) -> Any:
    if isinstance(assignment_id, bool) or not isinstance(assignment_id, int):
        raise InvalidInput("assignment must be a whole number", field="assignment")
    a = assignments
    row = conn.execute(select(a).where(a.c.id == assignment_id,
                                       a.c.campaign_id == camp.id)).first()
    if row is None or row.rater != rater:
        raise NotFound(f"no assignment {assignment_id} of {rater!r} in campaign "
                       f"{camp.name!r}", field="assignment")
    return row


def _take_back(conn: Connection, camp: Campaign, row: Any, now: datetime) -> None:
    """Accept work on an assignment: a leased one (even past its end, while the sweep has
    not expired it), or an expired one whose item still has a free place."""
    a, ci = assignments, campaign_items
    if row.status in ("done", "skipped"):
        raise Conflict(f"assignment {row.id} is {row.status} already", field="assignment")
    if row.status == "expired":
        overlap = None if _is_gold(conn, row.item_id) else camp.overlap
        q = ci.update().where(ci.c.id == row.item_id)
        if overlap is not None:
            q = q.where(ci.c.n_active < overlap)
        if not conn.execute(q.values(n_active=ci.c.n_active + 1)).rowcount:
            raise Conflict(f"assignment {row.id} expired and its item went to other "
                           "raters", field="assignment")
        conn.execute(a.update().where(a.c.id == row.id).values(status="leased"))


def _is_gold(conn: Connection, item_id: int) -> bool:
    return bool(conn.execute(select(campaign_items.c.is_gold).where(
        campaign_items.c.id == item_id)).scalar_one())


def _answer_value(sig: dict[str, Any], value: Any, swapped: bool) -> Any:
    if sig["type"] == "pairwise" and isinstance(value, str):
        choice = value.strip().lower()
        if choice == "left":
            return "b" if swapped else "a"
        if choice == "right":
            return "a" if swapped else "b"
    return value


def _default_settings() -> Settings:
    """Settings from the environment for a caller that passes none. Annotations are not
    pseudonymised (source annotator), so the key only enters these rows' content hash:
    without one configured, a fixed one is used rather than creating a key file or
    failing on PostgreSQL."""
    settings = load_settings()
    if settings.pseudonym_key is None:
        settings = load_settings(pseudonym_key="feedbackloop-annotation")
    return settings


def submit(store: Store, project: Project | str, campaign: Campaign | str | int, rater: str,
           assignment_id: int, answers: dict[str, Any], *, correction: str | None = None,
           comment: str | None = None, now: datetime | None = None,
           settings: Settings | None = None) -> dict[str, Any]:
    """Record the rater's answers (one per campaign signal; text signals may be left out)
    as feedback, with the assignment done, in one transaction. Pairwise answers may be
    ``left``/``right`` (mapped through the assignment's ``swapped``) or ``a``/``b``/``tie``.
    The correction and comment are stored on the first signal's feedback row.

    Pass the application's ``settings`` (limits, redaction of names); without them they
    come from the environment."""
    now = as_utc(now) if now is not None else utcnow()
    assert now is not None
    if not isinstance(answers, dict):
        raise InvalidInput("answers must be an object {signal: value}", field="answers")
    for name, text in (("correction", correction), ("comment", comment)):
        if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT):
            raise InvalidInput(f"{name} must be text of at most {MAX_TEXT:,} characters",
                               field=name)
    settings = settings or _default_settings()
    with store.read() as conn:
        proj = _resolve(conn, project)
    ingestor = Ingestor(store, settings, proj)
    ingestor._load_signals()

    def attempt() -> dict[str, Any]:
        with store.transaction() as conn:
            camp = resolve_campaign(conn, proj, campaign)
            _check_rater(camp, rater)
            if not camp.active:
                raise Conflict(f"campaign {camp.name!r} is closed", field="campaign")
            row = _assignment(conn, camp, rater, assignment_id)
            names = [s["signal"] for s in camp.signals]
            unknown = sorted(set(answers) - set(names))
            if unknown:
                raise InvalidInput(f"{unknown[0]!r} is not a signal of campaign "
                                   f"{camp.name!r} (signals: {', '.join(names)})",
                                   field=f"answers.{unknown[0]}")
            for s in camp.signals:
                given = answers.get(s["signal"])
                if (given is None or given == "") and s["type"] != "text":
                    raise InvalidInput(f"give a value for signal {s['signal']!r}",
                                       field=f"answers.{s['signal']}")
            _take_back(conn, camp, row, now)
            item = conn.execute(select(campaign_items).where(
                campaign_items.c.id == row.item_id)).one()
            i = interactions
            cids = dict(conn.execute(select(i.c.id, i.c.client_id).where(i.c.id.in_(
                [item.interaction_id] + ([item.interaction_b_id]
                                         if item.interaction_b_id else []))).order_by(i.c.id)
            ).all())
            records = []
            first = True
            for s in camp.signals:
                given = answers.get(s["signal"])
                if given is None or given == "":
                    continue
                rec: dict[str, Any] = {
                    "id": feedback_id(camp.id, int(row.id), s["signal"]),
                    "interaction_id": cids[item.interaction_id], "signal": s["signal"],
                    "value": _answer_value(s, given, bool(row.swapped)),
                    "source": "annotator", "rater_id": rater,
                    "guideline_version": str(s["guideline_version"]),
                    "timestamp": now.isoformat()}
                if item.interaction_b_id:
                    rec["interaction_id_b"] = cids[item.interaction_b_id]
                if first:
                    rec["correction"], rec["comment"] = correction or None, comment or None
                    first = False
                records.append(rec)
            if not records:
                raise InvalidInput("give at least one answer", field="answers")
            prep = ingestor.feedback_preparer
            prepared = [prep.prepare(k, r) for k, r in enumerate(records)]
            result = ingestor.write_feedback(prepared, conn=conn)
            for res in result.results:
                if res.status == "rejected":
                    sig = records[res.index]["signal"]
                    fld = f"answers.{sig}" if res.field == "value" else res.field
                    raise InvalidInput(f"signal {sig!r}: {res.message}", field=fld)
                if res.status == "duplicate":
                    raise Conflict(f"assignment {row.id} was submitted already",
                                   field="assignment")
            ids = [r["id"] for r in records]
            f = feedback
            stored = dict(conn.execute(select(f.c.client_id, f.c.id).where(
                f.c.project_id == proj.id, f.c.client_id.in_(ids))).all())
            sig_ids = {s["signal"]: s["signal_id"] for s in camp.signals}
            conn.execute(annotation_links.insert(), [
                {"campaign_id": camp.id, "assignment_id": int(row.id),
                 "feedback_id": int(stored[r["id"]]), "signal_id": sig_ids[r["signal"]]}
                for r in records])
            a, ci = assignments, campaign_items
            conn.execute(a.update().where(a.c.id == row.id).values(
                status="done", finished_at=now))
            conn.execute(ci.update().where(ci.c.id == row.item_id).values(
                n_done=ci.c.n_done + 1))
            return {"assignment": int(row.id), "feedback": ids}

    out: dict[str, Any] = _retrying(attempt)
    return out


def skip(store: Store, project: Project | str, campaign: Campaign | str | int, rater: str,
         assignment_id: int, reason: str, *, now: datetime | None = None) -> None:
    """Give the item back with a reason: it returns to the pool for other raters and is
    never served to this rater again."""
    now = as_utc(now) if now is not None else utcnow()
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a skip needs a reason", field="reason")
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise InvalidInput(f"the reason is at most {MAX_REASON} characters without NUL",
                           field="reason")
    with store.transaction() as conn:
        proj = _resolve(conn, project)
        camp = resolve_campaign(conn, proj, campaign)
        _check_rater(camp, rater)
        if not camp.active:
            raise Conflict(f"campaign {camp.name!r} is closed", field="campaign")
        row = _assignment(conn, camp, rater, assignment_id)
        if row.status in ("done", "skipped"):
            raise Conflict(f"assignment {row.id} is {row.status} already", field="assignment")
        a, ci = assignments, campaign_items
        hit = conn.execute(a.update().where(a.c.id == row.id, a.c.status == row.status)
                           .values(status="skipped", finished_at=now,
                                   skip_reason=reason.strip())).rowcount
        if not hit:
            raise Conflict(f"assignment {row.id} changed meanwhile; try again",
                           field="assignment")
        if row.status == "leased":
            conn.execute(ci.update().where(ci.c.id == row.item_id)
                         .values(n_active=ci.c.n_active - 1))


REMAINING_CAP = 1000


def rater_progress(conn: Connection, campaign: Campaign, rater: str) -> dict[str, Any]:
    """The rater's counts: ``done``, ``skipped`` and ``leased`` (regular items),
    ``gold_done``, and ``remaining``: the regular items still open to them (their current
    item included), counted up to :data:`REMAINING_CAP` (``remaining_capped`` says there
    are more), so the count costs the same in a campaign of a million items. ``total`` is
    the campaign's number of regular items."""
    a, ci = assignments, campaign_items
    counts = {s: 0 for s in ("leased", "done", "skipped", "expired")}
    for status, n in conn.execute(select(a.c.status, func.count()).where(
            a.c.campaign_id == campaign.id, a.c.rater == rater).group_by(a.c.status)):
        counts[status] = counts.get(status, 0) + int(n)
    # Gold items are few: the rater's rows on them, looked up by item (one probe each of
    # the (item, rater) key; a join let SQLite walk all the rater's rows instead).
    gold_ids = conn.execute(select(ci.c.id).where(
        ci.c.campaign_id == campaign.id, ci.c.is_gold.is_(True))).scalars().all()
    gold: dict[str, int] = {}
    if gold_ids:
        gold = {status: int(n) for status, n in conn.execute(
            select(a.c.status, func.count()).where(a.c.item_id.in_(gold_ids),
                                                   a.c.rater == rater)
            .group_by(a.c.status))}
    for status, n in gold.items():
        counts[status] -= n
    total = campaign.options.get("n_items")
    if total is None:
        total = conn.execute(select(func.count()).where(
            ci.c.campaign_id == campaign.id, ci.c.is_gold.is_(False))).scalar_one()
    held = ~exists().where(a.c.item_id == ci.c.id, a.c.rater == rater,
                           a.c.status.in_(_HELD))
    open_items = select(ci.c.id).where(
        ci.c.campaign_id == campaign.id, ci.c.is_gold.is_(False),
        ci.c.n_active < campaign.overlap, held)
    # After the rater's latest item first (where next_item looks first), then anywhere.
    after = _latest_position(conn, campaign, rater)
    n_open = int(conn.execute(select(func.count()).select_from(
        open_items.where(ci.c.position > after).limit(REMAINING_CAP + 1).subquery())
    ).scalar_one())
    if n_open == 0 and after >= 0:
        n_open = int(conn.execute(select(func.count()).select_from(
            open_items.limit(REMAINING_CAP + 1).subquery())).scalar_one())
    capped = n_open > REMAINING_CAP
    return {"rater": rater, "done": counts["done"], "skipped": counts["skipped"],
            "leased": counts["leased"], "gold_done": gold.get("done", 0),
            "remaining": min(n_open, REMAINING_CAP) + counts["leased"],
            "remaining_capped": capped, "total": int(total)}
