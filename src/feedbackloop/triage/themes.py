"""Themes: free-text comments and corrections clustered into groups with a label,
representative examples, a count and a weekly trend.

Vectors: sentence embeddings (all-MiniLM-L6-v2, cached like the embedding scorers) when the
``embeddings`` extra is installed, TF-IDF (1-2 grams, sublinear) otherwise, or as asked.
Clusters: k-means (scikit-learn, ``n_init=10``, seeded) on unit-length vectors; ``k`` is
given or chosen as the k in 2…``k_max`` with the highest mean silhouette (Rousseeuw 1987).
Label: the cluster's top TF-IDF terms (mean weight in the cluster minus the mean over all
texts, so words common to every comment do not name a theme). Examples: the members
nearest to the centroid (cosine). Trend: members per ISO week (Monday) of the feedback's
timestamp.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
from sqlalchemy import Connection, func, select

from ..capture.projects import Project, get_project
from ..errors import InvalidInput, NotFound
from ..governance import audit
from ..store import Store, as_utc, utcnow
from ..store.tables import feedback, signals, theme_members, theme_runs, themes

__all__ = ["METHODS", "Clustering", "cluster_texts", "get_run", "latest_run", "list_runs",
           "run_themes"]

METHODS = ("auto", "embeddings", "tfidf")
MIN_TEXTS = 4
MAX_TEXTS = 20_000
EXAMPLES = 3


@dataclass
class Clustering:
    """Result of :func:`cluster_texts`; ``labels[i]`` is text i's cluster."""

    method: str
    k: int
    labels: np.ndarray
    distances: np.ndarray  # cosine distance of each text to its centroid
    keywords: list[list[str]]
    examples: list[list[int]]  # indices of the texts nearest each centroid
    silhouette: dict[int, float] = field(default_factory=dict)


def _embeddings_available() -> bool:
    from ..scoring.embeddings import _missing_backend

    return _missing_backend() is None


def _vectors(texts: list[str], method: str) -> tuple[np.ndarray, Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english",
                            min_df=1, max_features=20_000)
    try:
        weights = tfidf.fit_transform(texts)
    except ValueError:  # only stop words
        tfidf = TfidfVectorizer(ngram_range=(1, 1), min_df=1)
        weights = tfidf.fit_transform(texts)
    if method == "embeddings":
        from ..scoring.embeddings import SemanticSimilarity

        vectors = np.asarray(SemanticSimilarity().embed(texts), dtype=np.float64)
    else:
        vectors = weights.toarray().astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms, weights, tfidf


def cluster_texts(texts: list[str], *, method: Literal["embeddings", "tfidf"] = "tfidf",
                  k: int | None = None, k_max: int = 12, seed: int = 0) -> Clustering:
    """Cluster ``texts`` (see the module docstring). ``k`` None: chosen by silhouette."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(texts)
    if n < MIN_TEXTS:
        raise InvalidInput(f"themes need at least {MIN_TEXTS} comments or corrections, "
                           f"found {n}", field="texts")
    # Identical texts are one point weighted by their count: otherwise every k up to the
    # number of distinct texts scores a near-perfect silhouette on the duplicates.
    unique = list(dict.fromkeys(texts))
    position = {t: j for j, t in enumerate(unique)}
    back = np.asarray([position[t] for t in texts])
    weight = np.bincount(back, minlength=len(unique)).astype(float)
    vectors, weights, tfidf = _vectors(unique, method)
    m = len(unique)
    scores: dict[int, float] = {}
    if k is None:
        best: tuple[float, int, Any] | None = None
        for candidate in range(2, max(2, min(k_max, m - 1)) + 1):
            if candidate >= m:
                break
            model = KMeans(n_clusters=candidate, n_init=10, random_state=seed).fit(
                vectors, sample_weight=weight)
            if len(set(model.labels_)) < 2:
                continue
            score = float(silhouette_score(vectors, model.labels_, metric="cosine"))
            scores[candidate] = score
            if best is None or score > best[0]:
                best = (score, candidate, model)
        if best is None:
            raise InvalidInput("the texts are too alike to form themes", field="texts")
        k, model = best[1], best[2]
    else:
        if not 1 <= k <= min(m, 100):
            raise InvalidInput(f"k must be between 1 and {min(m, 100)} (the distinct "
                               "texts)", field="k")
        model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(
            vectors, sample_weight=weight)
    ulabels = np.asarray(model.labels_)
    centroids = np.asarray(model.cluster_centers_)
    cnorm = np.linalg.norm(centroids, axis=1, keepdims=True)
    cnorm[cnorm == 0] = 1.0
    centroids = centroids / cnorm
    udist = 1.0 - np.einsum("ij,ij->i", vectors, centroids[ulabels])
    labels, distances = ulabels[back], udist[back]
    terms = np.asarray(tfidf.get_feature_names_out())
    dense = weights.toarray()
    overall = np.average(dense, axis=0, weights=weight)
    keywords, examples = [], []
    for c in range(k):
        members = np.flatnonzero(ulabels == c)
        lift = (np.average(dense[members], axis=0, weights=weight[members]) - overall
                if len(members) else overall * 0)
        top = [str(terms[j]) for j in np.argsort(-lift)[:5] if lift[j] > 0]
        keywords.append(top or ["(no distinctive words)"])
        order = members[np.argsort(udist[members], kind="stable")][:EXAMPLES]
        # The first text (in input order) carrying each of the nearest distinct texts.
        examples.append([int(np.flatnonzero(back == j)[0]) for j in order])
    return Clustering(method=method, k=int(k), labels=labels, distances=distances,
                      keywords=keywords, examples=examples, silhouette=scores)


def _week(ts: datetime) -> str:
    day = ts.date()
    return (day - timedelta(days=day.weekday())).isoformat()


def run_themes(store: Store, project: Project | str, *, method: str = "auto",
               k: int | None = None, k_max: int = 12, since: datetime | None = None,
               signal: str | None = None, actor: str = "", seed: int = 0) -> dict[str, Any]:
    """Cluster the project's comments and corrections (newest :data:`MAX_TEXTS`) and store
    the run, its themes and their members. Returns the run as :func:`get_run` does."""
    if method not in METHODS:
        raise InvalidInput(f"method must be one of {', '.join(METHODS)}", field="method")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int)):
        raise InvalidInput("k must be a whole number", field="k")
    if isinstance(k_max, bool) or not isinstance(k_max, int) or not 2 <= k_max <= 50:
        raise InvalidInput("k_max must be a whole number 2-50", field="k_max")
    used = method
    if method == "auto":
        used = "embeddings" if _embeddings_available() else "tfidf"
    elif method == "embeddings" and not _embeddings_available():
        from ..scoring.embeddings import MISSING_EXTRA

        raise InvalidInput(f"method embeddings: {MISSING_EXTRA}", field="method")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    f, s = feedback, signals
    with store.read() as conn:
        p = _project(conn, project)
        text = func.coalesce(f.c.comment, "")
        q = (select(f.c.id, f.c.comment, f.c.correction, f.c.value_text, f.c.timestamp,
                    s.c.type).join(s, s.c.id == f.c.signal_id)
             .where(f.c.project_id == p.id,
                    (func.length(text) > 0) | (func.length(func.coalesce(f.c.correction, ""))
                                               > 0)
                    | ((s.c.type == "text")
                       & (func.length(func.coalesce(f.c.value_text, "")) > 0))))
        if since is not None:
            q = q.where(f.c.timestamp >= since)
        if signal is not None:
            q = q.where(s.c.name == signal)
        rows = list(conn.execute(q.order_by(f.c.id.desc()).limit(MAX_TEXTS)))
    rows.reverse()
    texts = []
    for r in rows:
        parts = [r.comment or "", r.correction or ""]
        if r.type == "text" and r.value_text:
            parts.append(r.value_text)
        texts.append(" ".join(x for x in parts if x).strip()[:2000])
    result = cluster_texts(texts, method=used, k=k, k_max=k_max,  # type: ignore[arg-type]
                           seed=seed)
    params = {"method_asked": method, "k": result.k, "k_given": k is not None,
              "k_max": k_max, "seed": seed, "since": since.isoformat() if since else None,
              "signal": signal,
              "silhouette": {str(c): round(v, 4) for c, v in result.silhouette.items()},
              "clusterer": "k-means (cosine on unit vectors), k by silhouette"
              if k is None else "k-means (cosine on unit vectors), k given"}
    with store.transaction() as conn:
        run_id = int(conn.execute(theme_runs.insert().values(
            project_id=p.id, method=used, params=params, n_items=len(rows),
            created_by=actor[:100], created_at=utcnow())).inserted_primary_key[0])  # type: ignore[index]
        sizes = Counter(int(c) for c in result.labels)
        order = sorted(range(result.k), key=lambda c: (-sizes[c], c))
        for c in order:
            members = [i for i, lab in enumerate(result.labels) if lab == c]
            if not members:
                continue
            weeks = Counter(_week(as_utc(rows[i].timestamp))  # type: ignore[arg-type]
                            for i in members)
            theme_id = int(conn.execute(themes.insert().values(
                run_id=run_id, project_id=p.id,
                label=", ".join(result.keywords[c][:3])[:200],
                keywords=result.keywords[c], size=len(members),
                examples=[int(rows[i].id) for i in result.examples[c]],
                trend=[{"week": w, "count": n} for w, n in sorted(weeks.items())],
            )).inserted_primary_key[0])  # type: ignore[index]
            conn.execute(theme_members.insert(), [
                {"theme_id": theme_id, "feedback_id": int(rows[i].id),
                 "distance": float(result.distances[i])} for i in members])
        audit.record(conn, actor=actor or "system", action="theme_run.create",
                     entity_kind="theme_run", entity_id=run_id, project_id=p.id,
                     after={"method": used, "k": result.k, "n_items": len(rows)})
        return get_run(conn, p, run_id)


def _project(conn: Connection, project: Project | str | int) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def list_runs(conn: Connection, project: Project | str) -> list[dict[str, Any]]:
    p = _project(conn, project)
    r = theme_runs
    return [{"id": row.id, "method": row.method, "n_items": row.n_items,
             "k": (row.params or {}).get("k"), "created_by": row.created_by,
             "created_at": as_utc(row.created_at).isoformat()}  # type: ignore[union-attr]
            for row in conn.execute(select(r).where(r.c.project_id == p.id)
                                    .order_by(r.c.id.desc()))]


def latest_run(conn: Connection, project: Project | str) -> dict[str, Any] | None:
    p = _project(conn, project)
    found = conn.execute(select(func.max(theme_runs.c.id)).where(
        theme_runs.c.project_id == p.id)).scalar()
    return None if found is None else get_run(conn, p, int(found))


def get_run(conn: Connection, project: Project | str, run_id: int) -> dict[str, Any]:
    """A run with its themes, largest first; each theme's examples carry their text."""
    p = _project(conn, project)
    run = conn.execute(select(theme_runs).where(theme_runs.c.project_id == p.id,
                                                theme_runs.c.id == run_id)).first()
    if run is None:
        raise NotFound(f"no theme run {run_id} in project {p.name!r}", field="run")
    rows = list(conn.execute(select(themes).where(themes.c.run_id == run_id)
                             .order_by(themes.c.size.desc(), themes.c.id)))
    wanted = sorted({i for t in rows for i in t.examples})
    texts = {r.id: (r.comment or r.correction or r.value_text or "") for r in conn.execute(
        select(feedback.c.id, feedback.c.comment, feedback.c.correction,
               feedback.c.value_text).where(feedback.c.id.in_(wanted)))} if wanted else {}
    total = sum(t.size for t in rows) or 1
    return {
        "id": run.id, "method": run.method, "params": run.params, "n_items": run.n_items,
        "created_by": run.created_by,
        "created_at": as_utc(run.created_at).isoformat(),  # type: ignore[union-attr]
        "themes": [{"id": t.id, "label": t.label, "keywords": t.keywords, "size": t.size,
                    "share": t.size / total, "trend": t.trend,
                    "examples": [{"feedback_id": i, "text": texts.get(i, "")}
                                 for i in t.examples]} for t in rows]}
