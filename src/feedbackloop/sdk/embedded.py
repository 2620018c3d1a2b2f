"""The embedded transport: records go straight into the store through the Ingestor.

Each record is prepared (validated, redacted, pseudonymised, hashed) when it is logged, so
a bad record fails in the caller's hands, exactly as with the remote transport, and the
background thread only has the batched insert left to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from ..capture.browse import (
    FeedbackRecord,
    InteractionFilter,
    InteractionRecord,
    get_interaction,
    list_feedback,
    list_interactions,
)
from ..capture.ingest import Ingestor
from ..capture.prepare import Reject
from ..capture.projects import (
    Project,
    create_project,
    create_signal,
    get_project,
    get_signal,
    list_signals,
    signal_specs,
)
from ..capture.schema import SignalIn
from ..errors import InvalidInput, NotFound
from ..settings import Settings
from ..store import Store
from .batching import Outcome, Retryable

__all__ = ["EmbeddedTransport"]


class EmbeddedTransport:
    """Writes to and reads from one project of a local store."""

    def __init__(self, store: Store, settings: Settings, project: str, *,
                 owns_store: bool, create: bool) -> None:
        self.store = store
        self._owns_store = owns_store
        self.project = self._project(project, create)
        self.ingestor = Ingestor(store, settings, self.project)
        self._reload_signals()
        url = store.engine.url.render_as_string(hide_password=True)
        self.describe = f"{url} project {project!r}"

    def _project(self, name: str, create: bool) -> Project:
        try:
            with self.store.read() as conn:
                return get_project(conn, name)
        except NotFound:
            if not create:
                raise NotFound(
                    f"no project {name!r} in this database; create it with `feedbackloop "
                    f"projects create {name}` or pass create_project=True", field="project",
                    project=name) from None
        return create_project(self.store, name)

    def _reload_signals(self) -> None:
        with self.store.read() as conn:
            self.ingestor.feedback_preparer.signals = signal_specs(conn, self.project.id)

    # -- writes ------------------------------------------------------------------------
    def check(self, kind: str, record: dict[str, Any]) -> Any:
        if kind == "interaction":
            prepared = self.ingestor.interaction_preparer.prepare(0, record)
        else:
            prepared = self.ingestor.feedback_preparer.prepare(0, record)
            if isinstance(prepared, Reject) and prepared.field == "signal":
                # The signal may have been defined since we loaded them (by the CLI, say).
                self._reload_signals()
                prepared = self.ingestor.feedback_preparer.prepare(0, record)
        if isinstance(prepared, Reject):
            raise InvalidInput(f"{kind} {record.get('id')!r}: field {prepared.field!r}: "
                               f"{prepared.message}", field=prepared.field,
                               id=record.get("id"), kind=kind)
        return prepared

    def send(self, kind: str, payloads: list[Any]) -> Sequence[Outcome]:
        for i, prepared in enumerate(payloads):
            prepared.index = i
        write = (self.ingestor.write_interactions if kind == "interaction"
                 else self.ingestor.write_feedback)
        try:
            result = write(payloads)
        except (OperationalError, InterfaceError) as exc:
            # "database is locked", a dropped PostgreSQL connection: the transaction was
            # rolled back, so the batch can be written again.
            raise Retryable(f"{type(exc).__name__}: {exc.orig}") from None
        return [(r.status, r.field, r.message) for r in result.results]

    # -- reads -------------------------------------------------------------------------
    def _signal_id(self, conn: Any, name: str | None) -> int | None:
        return None if name is None else get_signal(conn, self.project.id, name).id

    def page_interactions(self, filters: dict[str, Any], limit: int,
                          cursor: str | None) -> tuple[list[InteractionRecord], str | None]:
        attributes = filters.get("attributes")
        with self.store.read() as conn:
            where = InteractionFilter(
                model_version=filters.get("model_version"),
                attributes={k: str(v) for k, v in attributes.items()} if attributes else None,
                signal_id=self._signal_id(conn, filters.get("signal")),
                source=filters.get("source"), since=filters.get("since"),
                until=filters.get("until"), experiment=filters.get("experiment"))
            page = list_interactions(conn, self.project.id, limit=limit, cursor=cursor,
                                     where=where)
        return page.items, page.next_cursor

    def page_feedback(self, filters: dict[str, Any], limit: int,
                      cursor: str | None) -> tuple[list[FeedbackRecord], str | None]:
        with self.store.read() as conn:
            page = list_feedback(conn, self.project.id, limit=limit, cursor=cursor,
                                 interaction_id=filters.get("interaction_id"),
                                 signal_id=self._signal_id(conn, filters.get("signal")),
                                 source=filters.get("source"), since=filters.get("since"),
                                 until=filters.get("until"))
        return page.items, page.next_cursor

    def get_interaction(self, interaction_id: str) -> InteractionRecord:
        with self.store.read() as conn:
            return get_interaction(conn, self.project.id, interaction_id)

    def project_info(self) -> dict[str, Any]:
        return self.project.to_dict()

    def signals(self) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            return [s.to_dict() for s in list_signals(conn, self.project.id)]

    def create_signal(self, spec: dict[str, Any]) -> dict[str, Any]:
        try:
            signal_in = SignalIn.model_validate(spec)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"]) or "(signal)"
            raise InvalidInput(f"signal {spec.get('name')!r}: field {field!r}: {err['msg']}",
                               field=field) from None
        signal = create_signal(self.store, self.project, signal_in)
        self._reload_signals()
        return signal.to_dict()

    def after_fork_in_child(self) -> None:
        # SQLAlchemy's advice for forks: drop the inherited pool without closing the
        # parent's connections.
        self.store.engine.dispose(close=False)

    def close(self) -> None:
        if self._owns_store:
            self.store.dispose()
