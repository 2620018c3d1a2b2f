"""Themes: comments of four known kinds come back as four themes (TF-IDF on both
databases; MiniLM embeddings once), with labels, examples, counts and a weekly trend."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from feedbackloop.errors import InvalidInput
from feedbackloop.governance.audit import entries
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import feedback, theme_members
from feedbackloop.triage.themes import cluster_texts, latest_run, run_themes

from .data import KINDS, support


def _purity(store: Store, run: dict, ids: dict[str, list[str]]) -> float:
    kind_of = {fid: kind for kind, fids in ids.items() for fid in fids}
    right = 0
    with store.read() as conn:
        for theme in run["themes"]:
            members = conn.execute(select(feedback.c.client_id).join(
                theme_members, theme_members.c.feedback_id == feedback.c.id)
                .where(theme_members.c.theme_id == theme["id"])).scalars().all()
            right += Counter(kind_of[m] for m in members).most_common(1)[0][1]
    return right / sum(len(v) for v in ids.values())


def test_tfidf_themes_recover_the_four_kinds_with_trend_and_examples(
        store: Store, settings: Settings) -> None:
    p, ids = support(store, settings, per_kind=6)
    run = run_themes(store, p, method="tfidf", actor="alice")
    assert run["method"] == "tfidf" and run["n_items"] == 24
    assert run["params"]["k"] == 4  # chosen by silhouette
    assert set(run["params"]["silhouette"]) >= {"2", "3", "4"}
    assert _purity(store, run, ids) == 1.0
    labels = " ".join(t["label"] for t in run["themes"])
    for word in ("slow", "refund", "password"):
        assert word in labels
    for theme in run["themes"]:
        assert theme["size"] == 6 and len(theme["examples"]) == 3
        assert all(e["text"] for e in theme["examples"])
        # Comments fall in the weeks of 2, 9 and 16 March 2026 (Mondays 2, 9, 16).
        assert [w["week"] for w in theme["trend"]] == ["2026-03-02", "2026-03-09",
                                                       "2026-03-16"]
        assert sum(w["count"] for w in theme["trend"]) == 6
    with store.read() as conn:
        assert latest_run(conn, p)["id"] == run["id"]  # type: ignore[index]
        assert next(e.action for e in entries(conn)) == "theme_run.create"


def test_too_few_texts_or_a_bad_k_name_the_field(store: Store, settings: Settings) -> None:
    p, _ = support(store, settings, per_kind=1)
    with pytest.raises(InvalidInput) as exc:
        run_themes(store, p, method="tfidf", k=40)
    assert exc.value.field == "k"
    with pytest.raises(InvalidInput) as exc:
        run_themes(store, p, method="words")
    assert exc.value.field == "method"
    with pytest.raises(InvalidInput) as exc:
        cluster_texts(["a", "b"])
    assert exc.value.field == "texts"


def test_embedding_themes_group_paraphrases() -> None:
    pytest.importorskip("torch")  # installed by `make test`
    texts = [c for comments in KINDS.values() for c in comments] * 2
    truth = [k for k, comments in KINDS.items() for _ in comments] * 2
    result = cluster_texts(texts, method="embeddings", k=4)
    groups: dict[int, Counter[str]] = {}
    for label, kind in zip(result.labels, truth, strict=True):
        groups.setdefault(int(label), Counter())[kind] += 1
    right = sum(c.most_common(1)[0][1] for c in groups.values())
    assert right / len(texts) >= 0.9
    assert result.method == "embeddings"


def test_embeddings_asked_without_the_extra_name_the_method(
        store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedbackloop.triage import themes

    p, _ = support(store, settings, per_kind=2)
    monkeypatch.setattr(themes, "_embeddings_available", lambda: False)
    with pytest.raises(InvalidInput, match="embeddings") as exc:
        run_themes(store, p, method="embeddings")
    assert exc.value.field == "method"
    run = run_themes(store, p, method="auto", k=2)  # falls back to TF-IDF
    assert run["method"] == "tfidf"
