"""Simulated datasets with known truth for the registry and trainer tests.

Datasets are written straight into the ``datasets`` and ``dataset_rows`` tables in the row
shapes the recipes produce (preference {"prompt", "chosen", "rejected"}; labels {"text",
"label", "confidence"}), split by prompt with :func:`split_groups`.

Preference truth: a response is better when it is about the prompt's topic *and* written
helpfully (words such as "first", "check", "because") rather than dismissively ("dunno",
"whatever"). Half the pairs contrast relevance at equal helpfulness, half helpfulness at
equal relevance; the filler length of every response is drawn independently, so length
says nothing about preference (the longer-answer baseline is a coin), and relevance alone
decides only the first half (its baseline is about 75 %).

Labels truth: P(spam | text) = sigmoid(1.6 (spammy words - clean words) - 0.4), labels
drawn from it, so a calibrated classifier's probability should match the observed rate.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
from sqlalchemy import select

from feedbackloop.capture.projects import Project, create_project, get_project
from feedbackloop.improve.splits import split_groups
from feedbackloop.store import Store, utcnow
from feedbackloop.store.tables import dataset_rows, datasets

GOOD = ["first", "check", "because", "steps", "example", "then", "settings", "confirm"]
BAD = ["dunno", "whatever", "maybe", "later", "cannot", "bye", "meh", "unsure"]
FILLER = ["the", "a", "you", "it", "we", "of", "and", "to", "this", "that", "is", "on"]
SPAMMY = ["winner", "free", "prize", "click", "urgent", "offer", "cash", "bonus"]
CLEAN = ["meeting", "report", "agenda", "invoice", "schedule", "notes", "draft", "review"]


def project(store: Store, name: str = "shop") -> Project:
    with store.read() as conn:
        try:
            return get_project(conn, name)
        except Exception:
            pass
    # Low risk: these tests drive the registry itself, and only a low-risk policy lets a
    # plain promotion put a version live (medium and high release through a gate).
    return create_project(store, name, risk_tier="low")


def insert_dataset(store: Store, project_name: str, name: str, recipe: str,
                   rows: list[dict[str, Any]], *, group_field: str = "prompt",
                   seed: int = 0, splits: list[str] | None = None) -> int:
    """A dataset row set as the recipes would store it; returns the dataset id."""
    groups = [str(r[group_field]) for r in rows]
    where = splits or split_groups(groups, seed=seed)
    content = hashlib.sha256(json.dumps([where, rows], sort_keys=True).encode()).hexdigest()
    with store.transaction() as conn:
        p = get_project(conn, project_name)
        version = (conn.execute(select(datasets.c.version).where(
            datasets.c.project_id == p.id, datasets.c.name == name)
            .order_by(datasets.c.version.desc())).scalar() or 0) + 1
        counts: dict[str, int] = {}
        for s in where:
            counts[s] = counts.get(s, 0) + 1
        ds_id = int(conn.execute(datasets.insert().values(
            project_id=p.id, name=name, version=version, recipe=recipe, params={},
            content_hash=content, counts={"splits": counts, "rows": len(rows)}, card={},
            created_by="test", created_at=utcnow())).inserted_primary_key[0])
        conn.execute(dataset_rows.insert(), [
            {"dataset_id": ds_id, "position": i, "split": s,
             "group_key": hashlib.sha256(g.encode()).hexdigest(), "data": r,
             "feedback_ids": []}
            for i, (r, s, g) in enumerate(zip(rows, where, groups, strict=True))])
    return ds_id


def _answer(rng: np.random.Generator, topic_words: list[str], tone: list[str]) -> str:
    words = list(rng.choice(topic_words, 3, replace=False)) + \
        list(rng.choice(tone, 2, replace=False)) + \
        list(rng.choice(FILLER, int(rng.integers(2, 25))))
    rng.shuffle(words)
    return " ".join(words)


def preference_rows(n_prompts: int = 200, pairs_per_prompt: int = 3, *, seed: int = 0,
                    n_topics: int = 30) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    topics = [[f"t{t}w{j}" for j in range(8)] for t in range(n_topics)]
    rows = []
    for i in range(n_prompts):
        t = int(rng.integers(n_topics))
        other = (t + 1 + int(rng.integers(n_topics - 1))) % n_topics
        prompt = f"how do i {' '.join(rng.choice(topics[t], 3, replace=False))} q{i}"
        for k in range(pairs_per_prompt):
            if k % 2 == 0:  # relevance contrast, same tone
                tone = GOOD if rng.random() < 0.5 else BAD
                chosen, rejected = _answer(rng, topics[t], tone), _answer(rng, topics[other],
                                                                         tone)
            else:  # tone contrast, both on topic
                chosen, rejected = _answer(rng, topics[t], GOOD), _answer(rng, topics[t], BAD)
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def true_spam_probability(text: str) -> float:
    words = text.split()
    score = sum(w in SPAMMY for w in words) - sum(w in CLEAN for w in words)
    return 1.0 / (1.0 + math.exp(-(1.6 * score - 0.4)))


def label_rows(n: int = 3000, *, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k_spam = int(rng.integers(0, 4))
        k_clean = int(rng.integers(0, 4))
        words = list(rng.choice(SPAMMY, k_spam)) + list(rng.choice(CLEAN, k_clean)) + \
            list(rng.choice(FILLER, int(rng.integers(3, 12))))
        rng.shuffle(words)
        text = " ".join(words) + f" m{i}"
        label = "spam" if rng.random() < true_spam_probability(text) else "ham"
        rows.append({"text": text, "label": label, "confidence": 1.0})
    return rows
