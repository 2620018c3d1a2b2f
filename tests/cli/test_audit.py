"""``feedbackloop audit list`` and ``feedbackloop trace`` through the real command tree on
SQLite and PostgreSQL (``audit verify`` and tampering: tests/governance/test_audit_tamper.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from feedbackloop.settings import Settings
from feedbackloop.store import Store

from ..governance.chain import Chain, build_chain
from .test_cli import Cli


@pytest.fixture
def chain(store: Store, settings: Settings) -> Chain:
    return build_chain(store, settings, comment="[bold]slow[/bold] <b>")


@pytest.fixture
def cli(db_url: str, tmp_path: Path, chain: Chain) -> Cli:
    return Cli(db_url, tmp_path)


def test_audit_list(cli: Cli, chain: Chain) -> None:
    everything = cli.json("audit", "list")
    assert everything[0]["action"] == "experiment.create"  # newest first
    assert {"id", "actor", "action", "entity_kind", "entity_id", "before", "after", "reason",
            "created_at", "hash", "prev_hash"} <= set(everything[0])
    versions = cli.json("audit", "list", "--project", "shop", "--entity",
                        f"model_version:{chain.v1_id}")
    assert [e["action"] for e in versions] == ["model.promote", "model.register"]
    kinds = {e["entity_kind"] for e in cli.json("audit", "list", "--entity", "model_version")}
    assert kinds == {"model_version"}
    paged = cli.json("audit", "list", "--limit", "2", "--before", str(everything[0]["id"]))
    assert [e["id"] for e in paged] == [everything[1]["id"], everything[2]["id"]]
    table = cli("audit", "list", "--project", "shop").stdout
    assert "model.promote" in table and "status: candidate → live" in " ".join(table.split())
    assert "no audit entries match" in cli("audit", "list", "--entity", "nothing").stdout
    bad = cli("audit", "list", "--entity", "model_version:", code=2)
    assert "KIND or KIND:ID" in bad.stderr
    assert "no project 'nope'" in cli("audit", "list", "--project", "nope", code=2).stderr


def test_trace(cli: Cli, chain: Chain) -> None:
    first = chain.feedback_ids[0]
    graph = cli.json("trace", "--feedback", str(first))
    assert graph["start"] == f"feedback:{first}" and graph["project"] == "shop"
    assert f"release:{chain.release_id}" in {n["id"] for n in graph["nodes"]}
    up = cli.json("trace", "--model-version", "ranking:v2", "--project", "shop")
    assert f"feedback:{first}" in {n["id"] for n in up["nodes"]}
    assert cli.json("trace", "--model-version", "ranking:v2")["start"] == up["start"]
    md = cli("trace", "--release", str(chain.release_id), "--format", "md").stdout
    assert md.startswith(f"# Provenance of release {chain.release_id}")
    assert "## Feedback" in md and "\\<b\\>" in md
    text = cli("trace", "--finding", str(chain.finding_id)).stdout
    assert "Answers are slow" in text and "[bold]slow[/bold]" in text  # markup escaped
    cut = cli("trace", "--dataset", str(chain.dataset_id), "--limit", "1").stdout
    assert "showing 1 of 3 feedback links" in cut

    assert "exactly one of" in cli("trace", code=2).stderr
    assert "exactly one of" in cli("trace", "--finding", "1", "--release", "1",
                                   code=2).stderr
    assert "no release 999" in cli("trace", "--release", "999", code=2).stderr
    assert "COMPONENT:NAME" in cli("trace", "--model-version", "v2", "--project", "shop",
                                   code=2).stderr
