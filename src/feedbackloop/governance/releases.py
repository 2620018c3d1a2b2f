"""Releases: a model version goes live (for everyone or for a cohort) through a passed gate
with the sign-offs its risk tier asks for, and comes back with one command.

:func:`promote` is refused, and the refusal recorded (``release.promote.refused``), unless
the gate is of this version, has passed its checks, has not been used by an earlier
release, and carries the required approvals and no standing rejection (under
``second_person`` the release's author and the gate's creator do not count as approvers).
In one transaction it then changes the registry (the version goes live; or, for a cohort, a
toggle rule serving it to the cohort is put first), writes the release naming its rollback
target (the version live before it: the one that serves everyone else, or everyone again
after a rollback), a provenance link version → release, the case study
(:func:`.case_study.build_case_study`) and the audit entry ``release.promote``.

:func:`rollback` undoes the component's newest release: a cohort release's toggle rule is
removed; a full release goes back to the previous live version through the registry's
rollback. The release becomes ``rolled_back``; audited as ``release.rollback``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from ..capture.projects import Project, get_project
from ..errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ..improve import registry as reg
from ..improve.toggles import Toggle
from ..store import Store, as_utc, utcnow
from ..store.tables import model_versions, releases
from .audit import record
from .gates import _gate_row, _refused, signoff_status

__all__ = ["get_release", "list_releases", "promote", "rollback"]

_MAX_TEXT = 10_000


def _project(conn: Connection, project: Project | str | int) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _iso(value: Any) -> str | None:
    stamp = as_utc(value)
    return stamp.isoformat() if stamp is not None else None


def _rule_name(release_id: int) -> str:
    return f"release-{release_id}"


def _check_cohort(cohort: Any) -> dict[str, Any] | None:
    """``{"when": [{"attribute", "op", "value"}], "percent": 0-100}`` (percent 100 by
    default), checked like a toggle rule."""
    if cohort is None:
        return None
    if not isinstance(cohort, Mapping) or set(cohort) - {"when", "percent"} \
            or not cohort.get("when"):
        raise InvalidInput('cohort must be {"when": [conditions], "percent": 1-100}',
                           field="cohort")
    percent = cohort.get("percent", 100)
    if isinstance(percent, bool) or not isinstance(percent, int | float) \
            or not 0 < percent <= 100:
        raise InvalidInput("cohort.percent must be a number in (0, 100]",
                           field="cohort.percent")
    when = cohort["when"]
    try:
        Toggle.from_dict("release", [{"when": when, "split": {"x": percent}}])
    except InvalidInput as exc:
        raise InvalidInput(f"cohort: {exc.message.replace('rules[0].', '')}",
                           field="cohort.when") from None
    return {"when": [dict(c) for c in when], "percent": float(percent)}


def _release_dict(conn: Connection, p: Project, row: Any) -> dict[str, Any]:
    v = model_versions
    names = dict(conn.execute(select(v.c.id, v.c.name).where(
        v.c.id.in_([i for i in (row.model_version_id, row.rollback_to_id) if i]))).all())
    return {"id": row.id, "project": p.name, "component": row.component,
            "version": names.get(row.model_version_id),
            "rollback_to": names.get(row.rollback_to_id), "gate_id": row.gate_id,
            "cohort": row.cohort, "status": row.status, "released_by": row.released_by,
            "released_at": _iso(row.released_at), "rolled_back_at": _iso(row.rolled_back_at),
            "case_study": row.case_study}


def get_release(conn: Connection, project: Project | str | int,
                release_id: int) -> dict[str, Any]:
    p = _project(conn, project)
    if isinstance(release_id, bool) or not isinstance(release_id, int) or release_id < 1:
        raise InvalidInput("a release id is a positive whole number", field="release_id")
    if release_id > 2**31 - 1:
        raise NotFound(f"no release {release_id} in project {p.name!r}", field="release_id")
    row = conn.execute(select(releases).where(releases.c.id == release_id,
                                              releases.c.project_id == p.id)).first()
    if row is None:
        raise NotFound(f"no release {release_id} in project {p.name!r}", field="release_id")
    return _release_dict(conn, p, row)


def list_releases(conn: Connection, project: Project | str | int, *,
                  component: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Newest first, without their case studies."""
    p = _project(conn, project)
    q = (select(releases).where(releases.c.project_id == p.id)
         .order_by(releases.c.id.desc()).limit(limit))
    if component is not None:
        q = q.where(releases.c.component == component)
    out = []
    for row in conn.execute(q):
        d = _release_dict(conn, p, row)
        d.pop("case_study")
        out.append(d)
    return out


def promote(store: Store, project: Project | str, component: str, version: str, *,
            gate_id: int, actor: str, cohort: Mapping[str, Any] | None = None,
            reason: str | None = None) -> dict[str, Any]:
    """Release ``version`` of ``component`` on gate ``gate_id`` (see the module docstring);
    returns the release with its case study."""
    if not isinstance(actor, str) or not actor or len(actor) > 100:
        raise InvalidInput("say who releases (1-100 characters)", field="actor")
    if reason is not None and (not isinstance(reason, str) or len(reason) > _MAX_TEXT):
        raise InvalidInput("reason must be text of at most 10,000 characters", field="reason")
    clean_cohort = _check_cohort(cohort)
    attempt = {"component": component, "version": version, "gate_id": gate_id,
               "cohort": clean_cohort}
    with store.read() as conn:
        p = _project(conn, project)
    try:
        with store.transaction() as conn:
            release = _promote(conn, store, p, component, version, gate_id, actor,
                               clean_cohort, reason)
    except (Conflict, PermissionDenied) as exc:
        raise _refused(store, exc, actor=actor, action="release.promote.refused",
                       entity_kind="model_version", entity_id=f"{component}:{version}",
                       project_id=p.id, after=attempt) from None
    reg.forget(store, p, component)
    return release


def _promote(conn: Connection, store: Store, p: Project, component: str, version: str,
             gate_id: int, actor: str, cohort: dict[str, Any] | None,
             reason: str | None) -> dict[str, Any]:
    gate = _gate_row(conn, p, gate_id, lock=True)
    v = model_versions
    vrow = conn.execute(select(v.c.id, v.c.status).where(
        v.c.project_id == p.id, v.c.component == component, v.c.name == version)).first()
    if vrow is None:
        raise NotFound(f"no version {version!r} of component {component!r} in project "
                       f"{p.name!r}", field="version")
    if gate.model_version_id != vrow.id or gate.component != component:
        # A refusal, recorded like the others: a gate cannot vouch for another version.
        raise Conflict(f"gate {gate_id} is not a gate of version {version!r} of "
                       f"{component!r}", field="gate_id")
    used = conn.execute(select(releases.c.id).where(releases.c.gate_id == gate_id)).first()
    if used is not None:
        raise Conflict(f"gate {gate_id} was used by release {used.id}; a new release needs "
                       "a new gate", field="gate_id")
    if gate.status != "passed":
        failing = [r["name"] for r in gate.result or [] if not r.get("passed")]
        detail = f" (failing: {', '.join(failing)})" if failing else \
            " (not checked yet: run gate check)"
        raise Conflict(f"gate {gate_id} is {gate.status}{detail}: version {version!r} "
                       "cannot be released", field="gate_id", status=gate.status)
    status = signoff_status(conn, gate, release_actor=actor)
    if not status["met"]:
        raise Conflict(f"gate {gate_id} lacks its sign-offs: " + "; ".join(status["reasons"]),
                       field="gate_id", signoffs=status["required"])
    live = conn.execute(select(v.c.id, v.c.name).where(
        v.c.project_id == p.id, v.c.component == component, v.c.status == "live")).first()
    if live is not None and live.id == vrow.id:
        raise Conflict(f"version {version!r} of {component!r} is live already",
                       field="version")
    now = utcnow()
    release_id = int(conn.execute(releases.insert().values(
        project_id=p.id, component=component, model_version_id=vrow.id, gate_id=gate_id,
        rollback_to_id=live.id if live is not None else None, cohort=cohort,
        status="released", case_study={}, released_by=actor, released_at=now,
    )).inserted_primary_key[0])  # type: ignore[index]
    if cohort is None:
        reg.promote(store, p, component, version, to="live", actor=actor, gated=True,
                    conn=conn)
    else:
        current = reg.get_toggle(conn, p, component)["rules"]
        rule = {"name": _rule_name(release_id), "when": cohort["when"],
                "split": {version: cohort["percent"]}}
        reg.set_toggle(store, p, component, [rule, *current], actor=actor, conn=conn)
    from .provenance import link

    link(conn, p.id, "model_version", vrow.id, "release", release_id, "released_as", actor)
    from .case_study import build_case_study

    study = build_case_study(conn, p.id, release_id)
    conn.execute(releases.update().where(releases.c.id == release_id)
                 .values(case_study=study))
    record(conn, actor=actor, action="release.promote", entity_kind="release",
           entity_id=release_id, project_id=p.id,
           before={"live": live.name if live is not None else None},
           after={"component": component, "version": version, "gate_id": gate_id,
                  "cohort": cohort, "rollback_to": live.name if live is not None else None,
                  "signoffs": status["required"]},
           reason=reason)
    row = conn.execute(select(releases).where(releases.c.id == release_id)).one()
    return _release_dict(conn, p, row)


def rollback(store: Store, project: Project | str, component: str, *, actor: str,
             reason: str = "") -> dict[str, Any]:
    """Undo the component's newest standing release (see the module docstring); returns
    ``{"release": the release or None, "live": the live version after, "cohort_rule_removed"}``.
    Without a standing release (a low-risk component promoted by hand) the registry's
    rollback runs alone, audited the same way."""
    if not isinstance(actor, str) or not actor or len(actor) > 100:
        raise InvalidInput("say who rolls back (1-100 characters)", field="actor")
    if not isinstance(reason, str) or len(reason) > _MAX_TEXT:
        raise InvalidInput("reason must be text of at most 10,000 characters", field="reason")
    with store.transaction() as conn:
        p = _project(conn, project)
        r = releases
        latest = conn.execute(select(r).where(
            r.c.project_id == p.id, r.c.component == component, r.c.status == "released")
            .order_by(r.c.id.desc()).limit(1)).first()
        v = model_versions
        live_before = conn.execute(select(v.c.id, v.c.name).where(
            v.c.project_id == p.id, v.c.component == component, v.c.status == "live")).first()
        removed = False
        if latest is not None and latest.cohort is not None:
            current = reg.get_toggle(conn, p, component)["rules"]
            kept = [rule for rule in current if rule.get("name") != _rule_name(latest.id)]
            removed = len(kept) != len(current)
            reg.set_toggle(store, p, component, kept, actor=actor, conn=conn)
            live_after = live_before.name if live_before is not None else None
        else:
            restored = reg.rollback(store, p, component, actor=actor, conn=conn)
            live_after = restored.name
        release = None
        if latest is not None and (latest.cohort is not None or (
                live_before is not None and latest.model_version_id == live_before.id)):
            conn.execute(r.update().where(r.c.id == latest.id).values(
                status="rolled_back", rolled_back_at=utcnow()))
            release = _release_dict(conn, p, conn.execute(
                select(r).where(r.c.id == latest.id)).one())
        record(conn, actor=actor, action="release.rollback",
               entity_kind="release" if release is not None else "component",
               entity_id=release["id"] if release is not None else component,
               project_id=p.id,
               before={"live": live_before.name if live_before is not None else None,
                       "release_status": "released" if release is not None else None},
               after={"live": live_after, "cohort_rule_removed": removed,
                      "release_status": "rolled_back" if release is not None else None},
               reason=reason or None)
    reg.forget(store, p, component)
    return {"release": release, "live": live_after, "cohort_rule_removed": removed}

