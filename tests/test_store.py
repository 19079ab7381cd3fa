"""The store keeps its word: nothing read back is trusted, one process per run, resume at the report."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from assay._io import atomic_path, write_text
from assay.cli import main
from assay.errors import StoreError
from assay.spec import parse_study
from assay.store import Store
from assay.study import Study

STUDY = """
name = "tiny"
seed = {seed}
[task]
builtin = "digits"
[[recipe]]
name = "mlp"
kind = "train"
arch = "mlp"
epochs = 2
[checks]
run = ["performance"]
n_boot = 200
[policy]
gates = ["accuracy >= 0.3"]
"""


def run_study(out, seed=0, **options):
    return Study(parse_study(STUDY.format(seed=seed)), out=out, progress=False, **options).run()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A runs folder with two finished runs of the tiny study (seeds 0 and 1), written under umask 022."""
    root = tmp_path_factory.mktemp("runs")
    old = os.umask(0o022)
    try:
        first, second = run_study(root, seed=0), run_study(root, seed=1)
    finally:
        os.umask(old)
    return root, first.run_id, second.run_id


@pytest.fixture()
def runs(finished, tmp_path):
    """A private copy of the finished runs, to damage."""
    root, first, second = finished
    shutil.copytree(root, tmp_path / "runs")
    return tmp_path / "runs", first, second


def cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err, *needles):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("assay: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def index_rows(root):
    with closing(sqlite3.connect(root / "index.db")) as con:
        return {table: sorted(map(tuple, con.execute(f"SELECT * FROM {table}"))) for table in ("runs", "candidates", "evidence")}


# --- every file read back is checked -------------------------------------------------------------

def _garbage(path):
    path.write_bytes(b"\x00not json at all{")


def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _edit_value(path):
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record["value"] = 1.0
    path.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")


def _choose_other(path):
    data = json.loads(path.read_text())
    data["chosen"] = "baseline" if data["chosen"] != "baseline" else "mlp"
    path.write_text(json.dumps(data))


def _stranger(path):
    data = json.loads(path.read_text())
    data["id"] = "someone-else"
    path.write_text(json.dumps(data))


DAMAGES = {
    "evidence garbage": ("evidence.jsonl", _garbage),
    "evidence truncated": ("evidence.jsonl", _truncate),
    "evidence value edited": ("evidence.jsonl", _edit_value),
    "decision garbage": ("decision.json", _garbage),
    "decision changed": ("decision.json", _choose_other),
    "run.json garbage": ("run.json", _garbage),
    "run.json of another run": ("run.json", _stranger),
    "run.json deleted": ("run.json", Path.unlink),
    "candidate description garbage": ("candidates/mlp.json", _garbage),
    "study file deleted": ("study.toml", Path.unlink),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_run_file_is_named_in_one_line(runs, capsys, damage):
    root, run_id, _ = runs
    name, spoil = DAMAGES[damage]
    spoil(root / run_id / name)
    for command in ("show", "report") if name != "study.toml" else ("report",):  # show does not read the study file
        code, _, err = cli(capsys, command, run_id, "--out", str(root))
        assert code == 2, (command, err)
        one_line_error(err, name.split("/")[-1], "--new")


@pytest.mark.parametrize("name", ["evidence.jsonl", "decision.json"])
def test_a_file_swapped_in_from_another_run_is_refused(runs, capsys, name):
    root, first, second = runs
    shutil.copy(root / second / name, root / first / name)
    code, _, err = cli(capsys, "show", first, "--out", str(root))
    assert code == 2
    one_line_error(err, name)


def test_forged_predictions_are_recomputed_not_trusted(runs):
    """The issue's case: a 5-row, 3-class file put in place of the 269-row one."""
    root, run_id, _ = runs
    store = Store(root)
    candidate = store.load_candidate(run_id, "mlp")
    from assay.checks.predictions import PredictionCache
    from assay.data.builtin import load_builtin

    task = load_builtin("digits", seed=0)
    cache = PredictionCache(root / run_id / "predictions")
    good = PredictionCache(None).get(candidate, task)
    path = cache._path((candidate.id, task.digest()[:16], "test", "clean"))
    assert path.is_file()
    np.savez(path, logits=np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]], labels=np.array([0, 1, 2, 0, 1]))
    with pytest.warns(UserWarning, match="recomputing"):
        got = cache.get(candidate, task)
    assert got.logits.shape == (len(task.test), task.num_classes)
    np.testing.assert_allclose(got.logits, good.logits, atol=1e-5)
    assert PredictionCache(root / run_id / "predictions").get(candidate, task).logits.shape == got.logits.shape  # overwritten


def test_a_damaged_candidate_is_made_again(runs):
    root, run_id, _ = runs
    weights = root / run_id / "candidates" / "mlp.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    store = Store(root)
    with pytest.warns(UserWarning, match="making it again"):
        assert not store.has_candidate(run_id, "mlp")


def test_checks_whose_evidence_changed_run_again(runs):
    root, run_id, _ = runs
    store = Store(root)
    candidate = store.load_candidate(run_id, "mlp")
    assert store.checks_done(run_id, [candidate])
    _edit_value(root / run_id / "evidence.jsonl")
    with pytest.warns(UserWarning, match="running the checks again"):
        assert store.checks_done(run_id, [candidate]) is None


# --- the index ------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["deleted", "garbage", "empty", "foreign"])
def test_a_lost_or_damaged_index_is_rebuilt_with_the_same_rows(runs, damage):
    root, first, second = runs
    before = index_rows(root)
    index = root / "index.db"
    if damage == "deleted":
        index.unlink()
    elif damage == "garbage":
        index.write_bytes(os.urandom(5000))
    elif damage == "empty":
        index.write_bytes(b"")
    else:
        index.unlink()
        with closing(sqlite3.connect(index)) as con, con:
            con.execute("CREATE TABLE runs (x)")
    with pytest.warns(UserWarning) if damage != "deleted" else _nothing():
        listed = Store(root).list_runs()
    assert {r["id"] for r in listed} == {first, second}
    assert index_rows(root) == before


def test_run_folders_removed_or_added_by_hand_are_followed(runs):
    root, first, second = runs
    shutil.move(root / second, root.parent / second)
    assert [r["id"] for r in Store(root).list_runs()] == [first]
    assert {row[0] for row in index_rows(root)["runs"]} == {first}
    shutil.move(root.parent / second, root / second)
    assert {r["id"] for r in Store(root).list_runs()} == {first, second}
    assert {row[0] for row in index_rows(root)["candidates"]} == {first, second}


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_locked_index_is_one_line(runs):
    root, _, _ = runs
    with closing(sqlite3.connect(root / "index.db")) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match="locked by another process"):
            Store(root, timeout=0.1).list_runs()


def test_out_that_is_a_file_or_missing_is_one_line(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(STUDY.format(seed=0))
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = cli(capsys, "run", str(study), "--out", str(afile), "--quiet")
    assert code == 2
    one_line_error(err, "is a file")
    for command in ("runs", "show"):
        code, _, err = cli(capsys, command, *(["latest"] if command == "show" else []), "--out", str(afile))
        assert code == 2
        one_line_error(err, "is a file")
    code, _, err = cli(capsys, "show", "latest", "--out", str(tmp_path / "missing"))
    assert code == 2
    one_line_error(err, "no runs")
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_one_line(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(STUDY.format(seed=0))
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, _, err = cli(capsys, "run", str(study), "--out", str(out), "--quiet")
    finally:
        out.chmod(0o755)
    assert code == 2
    one_line_error(err, "read-only")


def test_a_read_only_out_is_one_line_for_writing_and_still_readable(runs, capsys, monkeypatch):
    """Simulated (the tests may run as root, who writes anywhere): the folder says it is not writable."""
    root, first, second = runs
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **k: False if Path(path) == root and mode & os.W_OK else real(path, mode, **k))
    study = root.parent / "study.toml"
    study.write_text(STUDY.format(seed=2))
    code, _, err = cli(capsys, "run", str(study), "--out", str(root), "--quiet")
    assert code == 2
    one_line_error(err, "read-only", "--out")
    (root / "index.db").unlink()  # a missing index is rebuilt in memory, nothing written
    code, out, _ = cli(capsys, "runs", "--out", str(root))
    assert code == 0 and first in out and second in out
    assert not (root / "index.db").exists()


# --- one process per run --------------------------------------------------------------------------

def test_runs_started_in_the_same_second_get_different_ids(tmp_path, monkeypatch):
    import assay.store

    class Frozen(assay.store.datetime):
        @classmethod
        def now(cls, tz=None):
            return assay.store.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(assay.store, "datetime", Frozen)
    store = Store(tmp_path)
    with store.open_run("s", "abcd", {"config_hash": "abcd"}, "", resume=False) as a, \
         store.open_run("s", "abcd", {"config_hash": "abcd"}, "", resume=False) as b:
        assert a.id != b.id and a.folder.is_dir() and b.folder.is_dir()
        # A third, resuming, finds the newest unfinished run held by someone: refused with the fix.
        with pytest.raises(StoreError, match="--new"):
            store.open_run("s", "abcd", {"config_hash": "abcd"}, "")
        assert {r["status"] for r in store.list_runs()} == {"running"}
    assert {r["status"] for r in store.list_runs()} == {"interrupted"}  # left without a decision


def _assay(*args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "assay", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_identical_commands_never_share_a_run_folder(tmp_path):
    (tmp_path / "study.toml").write_text(STUDY.format(seed=0))
    procs = [_assay("run", "study.toml", "--out", "runs", "--quiet", cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    for code, out, err in results:
        if code == 2:  # refused in one line, with the fix, while the other ran
            assert len(err.strip().splitlines()) == 1 and "another assay process" in err and "--new" in err, err
    folders = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(folders) == codes.count(0)  # one folder per process that ran, none shared
    rows = Store(tmp_path / "runs").list_runs()
    assert sorted(r["id"] for r in rows) == sorted(p.name for p in folders)
    assert all(r["status"] == "finished" for r in rows)


def test_a_killed_run_reads_interrupted_and_resumes_without_leftovers(tmp_path):
    (tmp_path / "study.toml").write_text(STUDY.format(seed=0))
    proc = _assay("run", "study.toml", "--out", "runs", "--quiet", cwd=tmp_path)
    deadline = time.time() + 120
    while not list((tmp_path / "runs").glob("*/run.json")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(tmp_path / "runs")
    (run,) = store.list_runs()
    if run["status"] == "finished":
        pytest.skip("the run finished before it could be killed")
    assert run["status"] == "interrupted" and store.run_meta(run["id"])["status"] == "interrupted"
    stale = tmp_path / "runs" / run["id"] / "candidates" / ".mlp.safetensors.999999999-dead.tmp"  # what a SIGKILL leaves
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"half")
    result = Study.from_file(tmp_path / "study.toml", out=tmp_path / "runs", progress=False).run()
    assert result.resumed and result.run_id == run["id"] and result.exit_code == 0
    assert store.list_runs()[0]["status"] == "finished"
    assert not list((tmp_path / "runs").rglob("*.tmp"))


def test_a_run_killed_after_its_checks_resumes_at_the_report(tmp_path, monkeypatch):
    import assay.study
    from assay.checks.predictions import PredictionCache

    real_report = assay.study.build_report

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(assay.study, "build_report", killed)
    with pytest.raises(KeyboardInterrupt):
        run_study(tmp_path)
    store = Store(tmp_path)
    (row,) = store.list_runs()
    assert row["status"] == "interrupted"
    assert not (tmp_path / row["id"] / "report.html").exists()
    first = store.load_evidence(row["id"])

    def forbidden(*args, **kwargs):
        raise AssertionError("nothing may be trained, checked or predicted again")

    monkeypatch.setattr(assay.study, "build_report", real_report)
    monkeypatch.setattr(assay.study, "make_recipe", forbidden)
    monkeypatch.setattr(assay.study.Study, "evaluate", forbidden)
    monkeypatch.setattr(PredictionCache, "_compute", forbidden)
    result = run_study(tmp_path)
    assert result.resumed and result.run_id == row["id"] and result.exit_code == 0
    assert result.report.is_file() and store.list_runs()[0]["status"] == "finished"
    assert [e.to_dict() for e in result.evidence] == [e.to_dict() for e in first]


# --- files as the user expects them -------------------------------------------------------------

def test_files_follow_the_umask(finished, tmp_path):
    root, run_id, _ = finished
    for path in (root / run_id).rglob("*"):
        if path.is_file() and path.name != ".lock":
            assert path.stat().st_mode & 0o777 == 0o644, path
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_an_interrupted_write_leaves_no_tmp_file(tmp_path):
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "keep.txt") as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    assert (tmp_path / "keep.txt").read_text() == "old"
