"""File import and export on both databases: line numbers, rejects, formats, round trips."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from feedbackloop.capture import files
from feedbackloop.capture.browse import get_interaction, list_feedback, list_interactions
from feedbackloop.capture.importer import export, import_file
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.prepare import pseudonymise
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.errors import InvalidInput, NotFound
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import interactions

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _count(store: Store, project: Project) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(interactions).where(
            interactions.c.project_id == project.id)).scalar_one())


def _jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _rec(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"i{i}", "input": f"question {i}", "output": f"answer {i}", **extra}


@pytest.fixture
def project(store: Store) -> Project:
    p = create_project(store, "shop")
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    create_signal(store, p, SignalIn(name="rating", type="ordinal", scale_min=1, scale_max=5))
    create_signal(store, p, SignalIn(name="pref", type="pairwise"))
    return p


# -- JSONL -----------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
def test_jsonl_reports_bad_lines_by_number_and_keeps_the_good_ones(
        store: Store, settings: Settings, project: Project, tmp_path: Path,
        workers: int) -> None:
    path = _jsonl(tmp_path / "in.jsonl", [
        b"\xef\xbb\xbf" + orjson.dumps(_rec(1)),            # line 1, with a BOM
        orjson.dumps(_rec(2)) + b"\r",                        # line 2, CRLF
        b"",                                                  # line 3 blank: skipped
        b'{"id": "i4", "input": ',                            # line 4 malformed
        b'{"id": "i5", "input": "caf\xe9", "output": "x"}',   # line 5 Latin-1, not UTF-8
        orjson.dumps(_rec(6, colour="red")),                  # line 6 unknown field
        orjson.dumps(_rec(1)),                                # line 7 duplicate of line 1
        orjson.dumps({**_rec(2), "output": "changed"}),       # line 8 conflict with line 2
        b"[1, 2]",                                            # line 9 not an object
        orjson.dumps(_rec(10)),                               # line 10
    ])
    rejects = tmp_path / "rejects.jsonl"
    result = import_file(store, settings, project, "interactions", path, rejects=rejects,
                         workers=workers, progress=False)
    assert (result.accepted, result.duplicates, result.rejected) == (3, 1, 5)
    assert [(e["line"], e["field"]) for e in result.errors] == [
        (4, "(line)"), (5, "(line)"), (6, "colour"), (8, "id"), (9, "(record)")]
    assert result.errors[0]["message"].startswith("malformed JSON")
    assert result.errors[1]["message"].startswith("invalid UTF-8")
    assert result.errors[3]["id"] == "i2" and "different content" in result.errors[3]["message"]
    assert _count(store, project) == 3
    lines = [orjson.loads(x) for x in rejects.read_bytes().splitlines()]
    assert [x["line"] for x in lines] == [4, 5, 6, 8, 9]
    assert lines[0]["raw"] == '{"id": "i4", "input": '
    assert lines[1]["raw"] == '{"id": "i5", "input": "caf\\xe9", "output": "x"}'
    assert lines[2]["record"] == _rec(6, colour="red")
    assert lines[3]["record"]["output"] == "changed"


@pytest.mark.parametrize("workers", [0, 2])
def test_import_stores_what_the_ingestor_stores_and_is_idempotent(
        store: Store, settings: Settings, project: Project, tmp_path: Path,
        workers: int) -> None:
    # The import packs rows in its workers (COPY text on PostgreSQL): awkward characters,
    # JSON, missing timestamps, duplicates and conflicts must come out as through the
    # Ingestor's own path.
    awkward = "tab\there, line\nbreak, cr\r, back\\slash \\N, caf\u00e9 \U0001f600 \\."
    recs = [
        _rec(1, input=awkward, output=awkward + " out", timestamp="2024-05-01T12:00:00+02:00",
             context={"doc": awkward, "n": [1, 2.5, None]}, metadata={"k\tk": "v\\"},
             attributes={"locale": "de\tDE", "n": 3, "ok": True}, user_id="u\t1",
             latency_ms=12.5, propensity=0.25, consent=True, model_version="m\\1",
             experiment="e", arm="a", error="boom\n", reference="ref\\"),
        _rec(2, context="plain \\ text\t"),
        _rec(3, timestamp="2024-05-01T12:00:00"),
        _rec(2, context="plain \\ text\t"),          # duplicate of the second line
        {**_rec(3), "output": "changed"},             # conflict with the third line
        _rec(6, input="mail me at someone@example.com"),
    ]
    path = _jsonl(tmp_path / "in.jsonl", [orjson.dumps(r) for r in recs])
    result = import_file(store, settings, project, "interactions", path, workers=workers,
                         progress=False, chunk_size=4)
    assert (result.accepted, result.duplicates, result.rejected) == (4, 1, 1)
    assert [(e["line"], e["field"]) for e in result.errors] == [(5, "id")]

    other = create_project(store, "reference")
    ref = Ingestor(store, settings, other).interactions([recs[i] for i in (0, 1, 2, 5)])
    assert ref.rejected == 0
    with store.read() as conn:
        for cid in ("i1", "i2", "i3", "i6"):
            ours = get_interaction(conn, project.id, cid).to_wire()
            theirs = get_interaction(conn, other.id, cid).to_wire()
            if cid in ("i2", "i6"):  # no timestamp: the time of writing
                ours.pop("timestamp"), theirs.pop("timestamp")
            assert ours == theirs, cid
        i1 = get_interaction(conn, project.id, "i1")
        assert i1.input == awkward and i1.context == {"doc": awkward, "n": [1, 2.5, None]}
        assert i1.timestamp == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
        assert get_interaction(conn, project.id, "i6").input == "mail me at <EMAIL>"
        assert get_interaction(conn, project.id, "i3").timestamp == T0

    # Again, with one record changed since: the rest are duplicates, nothing is doubled.
    recs[5] = _rec(6, input="another question")
    path = _jsonl(tmp_path / "again.jsonl", [orjson.dumps(r) for r in recs])
    again = import_file(store, settings, project, "interactions", path, workers=workers,
                        progress=False, chunk_size=4)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 4, 2)
    assert [(e["line"], e["field"]) for e in again.errors] == [(5, "id"), (6, "id")]
    assert "stored already" in again.errors[1]["message"]
    assert _count(store, project) == 4


def test_jsonl_lines_split_across_read_blocks_and_overlong_lines(
        store: Store, settings: Settings, project: Project, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny blocks make every line straddle several reads; a tiny line limit makes line 3 too
    # long to buffer, so it is refused without being kept in memory.
    monkeypatch.setattr(files, "_BLOCK", 7)
    monkeypatch.setattr(files, "MAX_LINE_BYTES", 120)
    path = _jsonl(tmp_path / "in.ndjson.gz", [])
    lines = [orjson.dumps(_rec(i)) for i in range(1, 6)]
    lines[2] = orjson.dumps(_rec(3, reference="r" * 500))
    path.write_bytes(gzip.compress(b"\n".join(lines)))  # no newline after the last line
    result = import_file(store, settings, project, "interactions", path, workers=0,
                         progress=False, chunk_size=2)
    assert result.accepted == 4
    assert [(e["line"], e["field"]) for e in result.errors] == [(3, "(line)")]
    assert "longer than 120 bytes" in result.errors[0]["message"]
    with store.read() as conn:
        assert get_interaction(conn, project.id, "i5").input == "question 5"


def test_errors_list_is_capped_but_the_rejects_file_has_them_all(
        store: Store, settings: Settings, project: Project, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", [b"nope"] * 7)
    rejects = tmp_path / "r.jsonl"
    result = import_file(store, settings, project, "interactions", path, rejects=rejects,
                         workers=0, progress=False, max_errors=3)
    assert result.rejected == 7 and len(result.errors) == 3
    assert result.to_dict()["errors_truncated"] == 4
    assert len(rejects.read_bytes().splitlines()) == 7


def test_file_shape_errors_stop_before_anything_is_stored(
        store: Store, settings: Settings, project: Project, tmp_path: Path) -> None:
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("id,input,output,colour\n1,q,r,red\n")
    with pytest.raises(InvalidInput) as err:
        import_file(store, settings, project, "interactions", csv_path, progress=False)
    assert err.value.field == "colour" and "unknown column 'colour'" in err.value.message
    csv_path.write_text("id,input\n1,q\n")
    with pytest.raises(InvalidInput) as err:
        import_file(store, settings, project, "interactions", csv_path, progress=False)
    assert err.value.field == "output" and "missing required column" in err.value.message
    odd = tmp_path / "in.txt"
    odd.write_text("{}")
    with pytest.raises(InvalidInput) as err:
        import_file(store, settings, project, "interactions", odd, progress=False)
    assert err.value.field == "format"
    with pytest.raises(NotFound) as missing:
        import_file(store, settings, project, "interactions", tmp_path / "no.jsonl")
    assert missing.value.details["field"] == "file"
    assert _count(store, project) == 0


# -- CSV -------------------------------------------------------------------------------------
def test_csv_rows_fold_attributes_parse_json_cells_and_number_multiline_records(
        store: Store, settings: Settings, project: Project, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(
        b"id,input,output,attr.locale,attr.plan,context,metadata,latency_ms,consent\n"
        b'c1,hello,hi,en,,"{""doc"": ""a""}","{""k"": 1}",12.5,true\n'     # line 2
        b'c2,"two\nlines",ok,,pro,plain text,,,\n'                        # lines 3-4
        b"c3,too,many,cells,,,,,,extra\n"                                  # line 5
        b"c4,short\n"                                                      # line 6
        b"c5,caf\xe9,x,,,,,,\n"                                            # line 7 bad UTF-8
        b'c6,q,r,,,,"{not json",,\n'                                        # line 8
        b"c7,q,r,,,[1,,,\n"                                                # line 9
        b"\n"                                                              # line 10 blank
        b"c8,q,r,,,,,fast,\n")                                             # line 11
    rejects = tmp_path / "rejects.jsonl"
    result = import_file(store, settings, project, "interactions", path, rejects=rejects,
                         progress=False)
    assert [(e["line"], e["field"]) for e in result.errors] == [
        (5, "(line)"), (6, "(line)"), (7, "(line)"), (8, "metadata"), (11, "latency_ms")]
    assert result.errors[0]["message"] == "expected 9 cells, found 10"
    assert result.errors[1]["message"] == "expected 9 cells, found 2"
    assert result.errors[2]["message"] == "invalid UTF-8"
    assert result.errors[3]["id"] == "c6"
    assert result.accepted == 3
    with store.read() as conn:
        c1 = get_interaction(conn, project.id, "c1")
        c2 = get_interaction(conn, project.id, "c2")
        c7 = get_interaction(conn, project.id, "c7")
    assert c1.attributes == {"locale": "en"}
    assert c1.context == {"doc": "a"} and c1.metadata == {"k": 1}
    assert c1.latency_ms == 12.5 and c1.consent is True
    assert c2.input == "two\nlines" and c2.attributes == {"plan": "pro"}
    assert c2.context == "plain text" and c2.metadata is None and c2.consent is False
    assert c7.context == "[1"  # not JSON: stays text
    lines = [orjson.loads(x) for x in rejects.read_bytes().splitlines()]
    assert lines[2]["record"] == ["c5", "caf\\xe9", "x", "", "", "", "", "", ""]
    assert lines[3]["record"]["metadata"] == "{not json"


def test_csv_feedback_values_as_text_are_checked_against_the_signal(
        store: Store, settings: Settings, project: Project, tmp_path: Path) -> None:
    import_file(store, settings, project, "interactions",
                _jsonl(tmp_path / "i.jsonl", [orjson.dumps(_rec(1)), orjson.dumps(_rec(2))]),
                progress=False)
    path = tmp_path / "fb.csv"
    path.write_text("id,interaction_id,interaction_id_b,signal,value,source\n"
                    "f1,i1,,thumbs,true,\n"
                    "f2,i1,,rating,4,annotator\n"
                    "f3,i1,,rating,9,annotator\n"
                    "f4,i1,i2,pref,a,expert\n"
                    "f5,i9,,thumbs,no,\n")
    result = import_file(store, settings, project, "feedback", path, progress=False)
    assert result.accepted == 3
    assert [(e["line"], e["field"]) for e in result.errors] == [(4, "value"),
                                                                (6, "interaction_id")]
    with store.read() as conn:
        got = {f.id: f for f in list_feedback(conn, project.id).items}
    assert (got["f1"].value, got["f1"].source) == (True, "end_user")
    assert (got["f2"].value, got["f4"].interaction_id_b) == (4, "i2")


# -- Parquet ---------------------------------------------------------------------------------
def test_parquet_typed_columns_struct_and_map_attributes(
        store: Store, settings: Settings, project: Project, tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    table = pa.table({
        "id": ["p1", "p2", "p3"],
        "input": ["q1", "q2", None],
        "output": ["r1", "r2", "r3"],
        "timestamp": pa.array([T0, T0 + timedelta(hours=1), T0],
                              type=pa.timestamp("ms", tz="UTC")),
        "latency_ms": [1.5, None, 3.0],
        "consent": [True, False, None],
        "attributes": pa.array([{"locale": "en", "tier": 2}, {"locale": None, "tier": 1},
                                None], type=pa.struct([("locale", pa.string()),
                                                       ("tier", pa.int64())])),
        "attr.plan": ["pro", None, "free"],
    })
    pq.write_table(table, path, row_group_size=2)
    result = import_file(store, settings, project, "interactions", path, progress=False,
                         chunk_size=2)
    assert (result.accepted, result.rejected) == (2, 1)
    assert result.errors == [{"line": 3, "id": "p3", "field": "input",
                              "message": "Field required"}]
    with store.read() as conn:
        p1 = get_interaction(conn, project.id, "p1")
        p2 = get_interaction(conn, project.id, "p2")
    assert p1.attributes == {"locale": "en", "tier": 2, "plan": "pro"}
    assert p2.attributes == {"tier": 1}
    assert (p1.timestamp, p1.latency_ms, p1.consent) == (T0, 1.5, True)
    assert p2.timestamp == T0 + timedelta(hours=1)

    mapped = tmp_path / "map.parquet"
    pq.write_table(pa.table({
        "id": ["m1"], "input": ["q"], "output": ["r"],
        "attributes": pa.array([[("os", "ios")]], type=pa.map_(pa.string(), pa.string())),
        "metadata": ['{"trace": [1, 2]}'],
    }), mapped)
    assert import_file(store, settings, project, "interactions", mapped,
                       progress=False).accepted == 1
    with store.read() as conn:
        m1 = get_interaction(conn, project.id, "m1")
    assert (m1.attributes, m1.metadata) == ({"os": "ios"}, {"trace": [1, 2]})


# -- export and the round trip ---------------------------------------------------------------
def _seed(store: Store, settings: Settings, project: Project, tmp_path: Path) -> None:
    recs = [
        _rec(1, timestamp=T0.isoformat(), model_version="v1", context={"docs": ["a", "b"]},
             attributes={"locale": "en", "tier": 2, "beta": True}, user_id="u-1",
             session_id="s-1", latency_ms=120.5, consent=True,
             metadata={"trace": {"n": 1}}, experiment="e1", arm="B", propensity=0.5),
        _rec(2, timestamp=(T0 + timedelta(minutes=1)).isoformat(), context="plain, \"quoted\"",
             reference="ref", error="timeout\nretry", attributes={"locale": "de", "tier": 3}),
        _rec(3, timestamp=(T0 + timedelta(minutes=2)).isoformat(), input="ünïcödé ✓ 日本"),
    ]
    fb = [
        {"id": "f1", "interaction_id": "i1", "signal": "thumbs", "value": False,
         "timestamp": T0.isoformat(), "rater_id": "r1", "comment": "meh, \"no\""},
        {"id": "f2", "interaction_id": "i2", "signal": "rating", "value": 4,
         "source": "annotator", "rater_id": "ann-7", "guideline_version": "g2",
         "correction": "better", "timestamp": T0.isoformat()},
        {"id": "f3", "interaction_id": "i1", "interaction_id_b": "i3", "signal": "pref",
         "value": "tie", "source": "expert", "timestamp": T0.isoformat()},
    ]
    src = tmp_path / "seed"
    src.mkdir(exist_ok=True)
    r1 = import_file(store, settings, project, "interactions",
                     _jsonl(src / "i.jsonl", [orjson.dumps(r) for r in recs]), progress=False)
    r2 = import_file(store, settings, project, "feedback",
                     _jsonl(src / "f.jsonl", [orjson.dumps(r) for r in fb]), progress=False)
    assert (r1.accepted, r2.accepted) == (3, 3)


def _wire(store: Store, project: Project) -> tuple[dict[str, Any], dict[str, Any]]:
    with store.read() as conn:
        its = {r.id: r.to_wire() for r in list_interactions(conn, project.id).items}
        fbs = {r.id: r.to_wire() for r in list_feedback(conn, project.id).items}
    return its, fbs


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "csv.gz"])
def test_export_imports_again_into_another_project_unchanged(
        store: Store, settings: Settings, project: Project, tmp_path: Path, fmt: str) -> None:
    _seed(store, settings, project, tmp_path)
    other = create_project(store, "copy")
    for s in ("thumbs", "rating", "pref"):
        create_signal(store, other, SignalIn(
            name=s, type={"thumbs": "binary", "rating": "ordinal", "pref": "pairwise"}[s],
            scale_min=1 if s == "rating" else None, scale_max=5 if s == "rating" else None))
    out_i, out_f = tmp_path / f"i.{fmt}", tmp_path / f"f.{fmt}"
    assert export(store, project, "interactions", out_i).records == 3
    assert export(store, project, "feedback", out_f).records == 3
    ri = import_file(store, settings, other, "interactions", out_i, progress=False)
    rf = import_file(store, settings, other, "feedback", out_f, progress=False)
    assert (ri.accepted, ri.rejected, rf.accepted, rf.rejected) == (3, 0, 3, 0), (ri, rf)

    its_a, fbs_a = _wire(store, project)
    its_b, fbs_b = _wire(store, other)
    key = settings.pseudonym_key_bytes()
    # Pseudonyms are pseudonymised once more on the way in: they never leave as raw ids.
    assert its_b["i1"]["user_id"] == pseudonymise(key, its_a["i1"]["user_id"])
    assert fbs_b["f1"]["rater_id"] == pseudonymise(key, fbs_a["f1"]["rater_id"])
    for d in (*its_a.values(), *its_b.values()):
        d.pop("user_id"), d.pop("session_id")
    fbs_a["f1"].pop("rater_id"), fbs_b["f1"].pop("rater_id")
    if fmt.startswith("csv"):
        # CSV carries every attribute value as text.
        for d in its_a.values():
            if d["attributes"]:
                d["attributes"] = {k: files._text_value(v) for k, v in d["attributes"].items()}
    assert its_b == its_a
    assert fbs_b == fbs_a
    assert its_b["i2"]["context"] == 'plain, "quoted"'
    assert its_b["i1"]["context"] == {"docs": ["a", "b"]}


def test_export_since_and_parquet_attribute_types(
        store: Store, settings: Settings, project: Project, tmp_path: Path) -> None:
    _seed(store, settings, project, tmp_path)
    out = tmp_path / "late.parquet"
    res = export(store, project, "interactions", out, since=T0 + timedelta(minutes=1))
    assert res.records == 2 and res.format == "parquet"
    table = pq.read_table(out)
    assert sorted(table.column("id").to_pylist()) == ["i2", "i3"]
    types = {f.name: str(f.type) for f in table.schema}
    assert types["attr.tier"] == "int64" and types["attr.locale"] == "string"
    assert types["timestamp"] == "timestamp[us, tz=UTC]" and types["consent"] == "bool"
    assert "attr.beta" not in types  # only i1 had it, and i1 is before `since`
    assert not (tmp_path / "late.parquet.part").exists()
