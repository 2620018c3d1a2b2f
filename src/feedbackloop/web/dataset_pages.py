"""The Improve stage's dataset pages: every version of every dataset of a project, and a
version's card (counts, what was dropped and why, parameters, content hash) with sample rows
whose feedback ids link to the interactions they judged (lineage, walked from the page).

Reading needs the viewer role. Building stays on the CLI and the Python services.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from starlette.responses import Response

from ..access import Principal
from ..errors import InvalidInput
from ..improve.datasets import get_dataset, iter_rows, list_datasets
from ..store.tables import feedback, interactions
from .pages import _readable_project, _render, _signed_in, _store

__all__ = ["install_dataset_pages"]

SAMPLE = 50


def _list_page(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            rows = list_datasets(conn, project)
        rows.sort(key=lambda d: (d.name, -d.version))
        return _render(request, "datasets.html", principal=principal,
                       title=f"Datasets · {project.name}", project=project, rows=rows,
                       active="Datasets")

    return _signed_in(request, build)


def _dataset_page(request: Request, name: str, dataset: str, version: int) -> Response:
    split = request.query_params.get("split") or None

    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            ds = get_dataset(conn, project, dataset, version)
            if split is not None and split not in ds.counts.get("splits", {}):
                raise InvalidInput(f"dataset {ds.ref} has no split {split!r}", field="split")
            sample = list(iter_rows(conn, ds, split, limit=SAMPLE))
            wanted = sorted({fid for r in sample for fid in r["feedback_ids"]})
            where: dict[str, str] = {}
            for start in range(0, len(wanted), 500):
                q = (select(feedback.c.client_id, interactions.c.client_id)
                     .join(interactions, interactions.c.id == feedback.c.interaction_id)
                     .where(feedback.c.project_id == project.id,
                            feedback.c.client_id.in_(wanted[start:start + 500])))
                where.update({f: i for f, i in conn.execute(q)})
            versions = [d.version for d in list_datasets(conn, project) if d.name == ds.name]
        return _render(request, "dataset.html", principal=principal,
                       title=f"{ds.ref} · {project.name}", project=project, ds=ds,
                       sample=sample, interaction_of=where, split=split, versions=versions,
                       active="Datasets", sample_size=SAMPLE)

    return _signed_in(request, build)


def install_dataset_pages(app: FastAPI) -> None:
    html: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    app.add_api_route("/projects/{name}/datasets", _list_page, methods=["GET"],
                      name="dataset_list", **html)
    app.add_api_route("/projects/{name}/datasets/{dataset}/{version:int}", _dataset_page,
                      methods=["GET"], name="dataset_detail", **html)
