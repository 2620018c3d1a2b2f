"""The external trainer runs a real command: on success its artifact (file or folder) is
registered with its metrics; on failure the run keeps the end of its stderr and nothing is
registered."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from feedbackloop.errors import InvalidInput
from feedbackloop.improve import registry as reg
from feedbackloop.improve.artifacts import sha256_bytes, tar_folder
from feedbackloop.improve.trainers import list_training_runs, train
from feedbackloop.store import Store
from feedbackloop.store.tables import model_versions

from .model_data import insert_dataset, preference_rows, project

SCRIPT = '''
import json, os, sys
rows = [json.loads(line) for line in open(os.environ["FEEDBACKLOOP_DATASET"])]
splits = sorted({r["split"] for r in rows})
params = json.loads(os.environ["FEEDBACKLOOP_PARAMS"])
out = os.environ["FEEDBACKLOOP_ARTIFACT"]
if sys.argv[1] == "folder":
    os.makedirs(os.path.join(out, "weights"))
    open(os.path.join(out, "weights", "w.txt"), "w").write(str(len(rows)))
    seed = os.environ["FEEDBACKLOOP_SEED"]
    open(os.path.join(out, "config.json"), "w").write(json.dumps({"seed": seed}))
else:
    open(out, "w").write(json.dumps({"rows": len(rows), "first": rows[0]}, sort_keys=True))
json.dump({"rows": len(rows), "splits": splits, "timeout": params["timeout"]},
          open(os.environ["FEEDBACKLOOP_METRICS"], "w"))
print("trained", file=sys.stderr)
'''


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train_dpo.py"
    path.write_text(SCRIPT)
    return path


@pytest.fixture
def prefs(store: Store) -> int:
    project(store)
    return insert_dataset(store, "shop", "prefs", "preference", preference_rows(30, 2))


def test_external_command_writes_a_file_that_is_registered(
        store: Store, prefs: int, script: Path, tmp_path: Path) -> None:
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} file"
    run, version = train(store, "shop", "external", "prefs", params={"command": command},
                         seed=4, artifact_root=tmp_path / "art", name="dpo-1")
    assert (version.component, version.trainer, version.status) == ("generation",
                                                                    "external", "candidate")
    assert version.metrics["rows"] == 60 and version.metrics["timeout"] == 3600
    assert set(version.metrics["splits"]) <= {"train", "validation", "test"}
    assert version.metrics["external"]["artifact_kind"] == "file"
    assert run.status == "succeeded" and run.artifact_hash == version.artifact_hash
    written = Path(str(version.artifact_uri).removeprefix("file://")).read_bytes()
    doc = orjson.loads(written)
    assert doc["rows"] == 60 and set(doc["first"]) == {"split", "prompt", "chosen",
                                                      "rejected"}
    assert sha256_bytes(written) == version.artifact_hash
    model = reg.load_model(store, "shop", "generation", "dpo-1")
    assert model.data == written
    with pytest.raises(InvalidInput, match="trained by an external command"):
        model.predict({"prompt": "x"})


def test_external_folder_artifact_is_a_reproducible_tar(
        store: Store, prefs: int, script: Path, tmp_path: Path) -> None:
    command = [sys.executable, str(script), "folder"]
    _, a = train(store, "shop", "external", "prefs", params={"command": command},
                 seed=4, artifact_root=tmp_path / "art", component="policy")
    _, b = train(store, "shop", "external", "prefs", params={"command": command},
                 seed=4, artifact_root=tmp_path / "art", component="policy")
    assert a.component == "policy" and a.artifact_hash == b.artifact_hash
    expected = tmp_path / "expected"
    (expected / "weights").mkdir(parents=True)
    (expected / "weights" / "w.txt").write_text("60")
    (expected / "config.json").write_text('{"seed": "4"}')
    assert a.artifact_hash == sha256_bytes(tar_folder(expected))


def test_a_failing_command_fails_the_run_with_its_stderr_and_registers_nothing(
        store: Store, prefs: int, tmp_path: Path) -> None:
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nprint('x' * 5000, file=sys.stderr)\n"
                     "print('CUDA out of memory', file=sys.stderr)\nsys.exit(3)\n")
    with pytest.raises(InvalidInput, match="failed with exit code 3") as exc:
        train(store, "shop", "external", "prefs",
              params={"command": [sys.executable, str(crash)]}, artifact_root=tmp_path)
    assert exc.value.message.endswith("CUDA out of memory")
    silent = tmp_path / "silent.py"
    silent.write_text("pass\n")
    with pytest.raises(InvalidInput, match="wrote no artifact"):
        train(store, "shop", "external", "prefs",
              params={"command": [sys.executable, str(silent)]}, artifact_root=tmp_path)
    with pytest.raises(InvalidInput, match="'no-such-trainer-binary' was not found"):
        train(store, "shop", "external", "prefs",
              params={"command": "no-such-trainer-binary --go"}, artifact_root=tmp_path)
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    with pytest.raises(InvalidInput, match=r"longer than 0\.5 s"):
        train(store, "shop", "external", "prefs",
              params={"command": [sys.executable, str(slow)], "timeout": 0.5},
              artifact_root=tmp_path)
    with pytest.raises(InvalidInput, match="needs the parameter 'command'"):
        train(store, "shop", "external", "prefs", artifact_root=tmp_path)
    with store.read() as conn:
        runs = list_training_runs(conn, "shop")
        assert conn.execute(select(func.count()).select_from(model_versions)).scalar() == 0
    assert [r.status for r in runs] == ["failed"] * 5
    assert runs[0].error is not None and runs[0].error.endswith("CUDA out of memory")
    assert len(runs[0].error) < 2200  # the tail, not all 5,000 characters


def test_export_task_hands_the_command_the_training_library_files(
        store: Store, prefs: int, tmp_path: Path) -> None:
    reader = tmp_path / "read_dpo.py"
    reader.write_text(
        "import json, os, pathlib\n"
        "folder = pathlib.Path(os.environ['FEEDBACKLOOP_DATASET'])\n"
        "names = sorted(p.name for p in folder.iterdir())\n"
        "first = json.loads((folder / 'train.jsonl').read_text().splitlines()[0])\n"
        "open(os.environ['FEEDBACKLOOP_ARTIFACT'], 'w').write('ok')\n"
        "json.dump({'files': names, 'columns': sorted(first)},\n"
        "          open(os.environ['FEEDBACKLOOP_METRICS'], 'w'))\n")
    _, version = train(store, "shop", "external", "prefs", artifact_root=tmp_path / "art",
                       params={"command": [sys.executable, str(reader)],
                               "export_task": "dpo"})
    assert "train.jsonl" in version.metrics["files"]
    assert version.metrics["columns"] == ["chosen", "prompt", "rejected"]
    with pytest.raises(InvalidInput, match="task"):
        train(store, "shop", "external", "prefs", artifact_root=tmp_path / "art",
              params={"command": [sys.executable, str(reader)], "export_task": "kto"})
