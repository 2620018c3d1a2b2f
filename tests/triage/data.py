"""A support project with feedback of four known kinds, logged through the real ingest
path: the truth behind every triage and theme test."""

from __future__ import annotations

from typing import Any

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.settings import Settings
from feedbackloop.store import Store

# (route, comments): three phrasings each, so TF-IDF has words in common within a kind.
KINDS: dict[str, list[str]] = {
    "latency": ["the answer was very slow to load", "slow response, waited a minute",
                "took forever, too slow and timed out"],
    "factuality": ["wrong answer, the refund policy date is incorrect",
                   "incorrect facts about the refund policy",
                   "the answer is wrong: refund policy changed"],
    "privacy": ["it showed another customer's email address and phone number",
                "leaked my phone number and home address",
                "displayed someone else's email address"],
    "ux": ["the password reset button is hard to find",
           "cannot find the password reset button on mobile",
           "password reset link button confusing"],
}


def support(store: Store, settings: Settings, *, per_kind: int = 6,
            name: str = "help") -> tuple[Project, dict[str, list[str]]]:
    """Project ``name`` with thumbs (binary) and rating (1-5). For every kind, ``per_kind``
    thumbs-down items with a comment (user ``u-<kind>-<j mod 3>``), plus 5 thumbs-up without
    words and 2 ratings of 5 (not candidates) and 2 ratings of 1 without a comment
    (candidates). Returns the project and the feedback client ids per kind."""
    p = create_project(store, name)
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    create_signal(store, p, SignalIn(name="rating", type="ordinal", scale_min=1, scale_max=5))
    inters: list[dict[str, Any]] = []
    fb: list[dict[str, Any]] = []
    ids: dict[str, list[str]] = {k: [] for k in KINDS}
    n = 0
    for kind, comments in KINDS.items():
        for j in range(per_kind):
            n += 1
            iid = f"i{n}"
            inters.append({"id": iid, "input": f"question {n}", "output": f"answer {n}",
                           "user_id": f"u-{kind}-{j % 3}",
                           "timestamp": f"2026-03-{2 + (j % 3) * 7:02d}T10:00:00Z",
                           "attributes": {"locale": "de" if j % 2 else "en"}})
            fid = f"f{n}"
            fb.append({"id": fid, "interaction_id": iid, "signal": "thumbs", "value": False,
                       "source": "end_user", "comment": comments[j % len(comments)],
                       "timestamp": f"2026-03-{2 + (j % 3) * 7:02d}T10:05:00Z"})
            ids[kind].append(fid)
    for j in range(5):
        n += 1
        inters.append({"id": f"i{n}", "input": "q", "output": "a", "user_id": f"happy{j}"})
        fb.append({"id": f"up{j}", "interaction_id": f"i{n}", "signal": "thumbs",
                   "value": True, "source": "end_user"})
    for j, stars in enumerate((5, 5, 1, 1)):
        n += 1
        inters.append({"id": f"i{n}", "input": "q", "output": "a", "user_id": f"rater{j}"})
        fb.append({"id": f"r{j}", "interaction_id": f"i{n}", "signal": "rating",
                   "value": stars, "source": "end_user"})
    ing = Ingestor(store, settings, p)
    res = ing.interactions(inters)
    assert res.rejected == 0, res.errors
    res = ing.feedback(fb)
    assert res.rejected == 0, res.errors
    return p, ids


def feedback_ids(store: Store, project: Project, client_ids: list[str]) -> list[int]:
    from sqlalchemy import select

    from feedbackloop.store.tables import feedback

    with store.read() as conn:
        found = dict(conn.execute(select(feedback.c.client_id, feedback.c.id).where(
            feedback.c.project_id == project.id, feedback.c.client_id.in_(client_ids))).all())
    return [int(found[c]) for c in client_ids]
