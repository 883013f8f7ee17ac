"""Output folders are written whole or not at all, with the umask's permissions, checked before reading."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runner import COMMAND, run

import alliance_ts as at
from alliance_ts.errors import InvalidInputError
from alliance_ts.files import detect_file
from alliance_ts.output import OutputFolder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "trial.csv"
    at.simulate(40, rng=1).scores.to_csv(path, index=False)
    return path


def test_an_unusable_out_exits_2_before_the_input_is_read(tmp_path, small_csv):
    # the input is not even a table: had it been read, that would be the error
    bad = tmp_path / "bad.csv"
    bad.write_text("client,session,score\n1,1\n")
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.docx").write_text("thesis")
    cases = {
        "file.txt": "alliance-ts: error: --out: 'file.txt' is a file, not a folder; name a new folder (or a previous "
                    "output folder of alliance-ts, which is replaced)",
        "bad.csv": "alliance-ts: error: --out: 'bad.csv' is the input file; name a folder for the outputs",
        "mine": "alliance-ts: error: --out: 'mine' holds files that are not a previous alliance-ts output "
                "('notes.docx'); name a new or empty folder, so that nothing of yours is replaced",
        ".": "alliance-ts: error: --out: the input 'bad.csv' is inside '.', which is replaced as a whole: name "
             "another folder for the outputs",
        "/proc/labels": "alliance-ts: error: --out: cannot write in '/proc': No such file or directory",
    }
    for out, message in cases.items():
        rc, stdout, err = run("detect", "bad.csv", "--out", out, cwd=tmp_path)
        assert (rc, stdout, err) == (2, "", message + "\n"), out
    assert (tmp_path / "mine" / "notes.docx").read_text() == "thesis"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        rc, _, err = run("detect", "bad.csv", "--out", "locked/labels", cwd=tmp_path)
        assert rc == 2 and "cannot write in 'locked': Permission denied" in err
    assert leftovers(tmp_path) == []


def test_outputs_get_the_umask_permissions_and_replace_a_previous_set(tmp_path, small_csv):
    rc, _, err = run("detect", small_csv, "--out", "o", "--quiet", cwd=tmp_path, umask=0o027)
    assert (rc, err) == (0, "")
    assert stat.S_IMODE((tmp_path / "o").stat().st_mode) == 0o750
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "o").iterdir()}
    assert modes == {"episodes.csv": 0o640, "sessions.csv": 0o640, "clients.csv": 0o640, "by_client.csv": 0o640,
                     "methods.md": 0o640, "manifest.json": 0o640}
    # a second run replaces the set as a whole (a parquet set replaces a csv one: no stale files)
    rc, _, err = run("detect", small_csv, "--out", "o", "--quiet", "--format", "parquet", cwd=tmp_path)
    assert (rc, err) == (0, "")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "by_client.parquet", "clients.parquet", "episodes.parquet", "manifest.json", "methods.md", "sessions.parquet"]
    assert leftovers(tmp_path) == []


def test_a_failure_leaves_the_previous_set_and_no_temporary_files(tmp_path, small_csv):
    rc, _, _ = run("detect", small_csv, "--out", "o", "--quiet", cwd=tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()}
    with pytest.raises(InvalidInputError, match="scale"):
        detect_file(small_csv, tmp_path / "o", scale=(0, 1))  # every score outside the range
    assert {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()} == before
    assert leftovers(tmp_path) == []


def test_a_killed_run_is_cleaned_up_by_the_next(tmp_path):
    # kill -9 cannot be caught: its temporary folder (of a process that no longer exists)
    # is removed by the next run for the same --out
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".o.partial-{int(dead.stdout)}-abcd1234"
    stale.mkdir()
    (stale / "episodes.csv").write_text("half")
    with OutputFolder(tmp_path / "o") as folder:
        folder.path("x.txt").write_text("1")
        folder.commit({"alliance_ts": at.__version__})
    assert leftovers(tmp_path) == []
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["outputs"] == ["x.txt"]


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    """A trial that takes the command a couple of seconds, so that signals land at every stage."""
    path = tmp_path_factory.mktemp("big") / "trial.csv"
    sim = at.simulate(15_000, rng=2, n_sessions=(10, 12))
    sim.scores.to_csv(path, index=False)
    return path


def _state(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir()} if out.exists() else {}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_the_old_set_or_the_new_one(tmp_path, big_csv, sig):
    base = tmp_path / "work"
    base.mkdir()
    rc, _, err = run("detect", big_csv, "--out", "o", "--rule", "vshape", "--quiet", cwd=base)
    assert (rc, err) == (0, "")
    old = _state(base / "o")
    # the new run differs (another rule), so old and new sets can be told apart
    t0 = time.perf_counter()
    rc, _, err = run("detect", big_csv, "--out", "new", "--rule", "gumz2012", "--quiet", cwd=base)
    duration = time.perf_counter() - t0
    new = _state(base / "new")
    # signals at fixed shares of an uninterrupted run's time, jittered: at start-up, while
    # reading, labelling and writing, and after the end (whatever the machine's load)
    rng = np.random.default_rng(int(sig))
    outcomes = set()
    for share in (0.03, 0.3, 0.6, 0.85, 1.3):
        delay = duration * share * rng.uniform(0.9, 1.1)
        proc = subprocess.Popen(COMMAND + ["detect", str(big_csv), "--out", "o", "--rule", "gumz2012", "--quiet"],
                                cwd=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        state = _state(base / "o")
        if state == old:
            outcomes.add("old")
            assert proc.returncode in (130, 143, -sig), err
        else:  # the whole new set: every table as in an uninterrupted run, and a manifest
            assert {k: v for k, v in state.items() if k != "manifest.json"} == {
                k: v for k, v in new.items() if k != "manifest.json"}, f"a mixed set after {delay:.2f} s"
            assert json.loads(state["manifest.json"])["rule"] == "gumz2012"
            outcomes.add("new")
            old = state  # later interruptions must leave this set
        assert leftovers(base) == [], f"temporary files after {delay:.2f} s"
        if proc.returncode in (130, 143):
            assert err.endswith("nothing was written in 'o' (an earlier output there is unchanged)\n")
    assert "old" in outcomes  # at least one signal landed while the run was working


def test_symlinks_and_the_current_folder_are_refused(tmp_path, small_csv):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for out in ("link", "dangling"):
        with pytest.raises(InvalidInputError, match="is a symbolic link; name the folder itself"):
            detect_file(small_csv, tmp_path / out)
    here = tmp_path / "here"
    here.mkdir()
    cwd = os.getcwd()
    os.chdir(here)
    try:
        for out in (".", ".."):
            with pytest.raises(InvalidInputError, match="is the current folder .* name a folder inside it"):
                detect_file(small_csv, out)
    finally:
        os.chdir(cwd)
    assert leftovers(tmp_path) == []


def test_an_interrupt_after_the_swap_says_the_outputs_are_complete(tmp_path, small_csv, monkeypatch, capsys):
    # a Ctrl-C held back during the final swap is raised right after it: the message
    # must not claim that nothing was written
    import alliance_ts.files
    from alliance_ts import cli

    real = alliance_ts.files.detect_file

    def then_interrupted(*a, **k):
        real(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(alliance_ts.files, "detect_file", then_interrupted)
    out = str(tmp_path / "o")
    assert cli.main(["detect", str(small_csv), "--out", out, "--quiet"]) == 130
    assert capsys.readouterr().err == f"alliance-ts: interrupted after the outputs were written to {out!r} " \
                                      "(they are complete)\n"
    assert (tmp_path / "o" / "manifest.json").exists()
