"""The ``alliance-ts`` command, run as a subprocess like a user would."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from cli_runner import COMMAND, run

import alliance_ts as at
from alliance_ts import cli
from alliance_ts.rules import list_rules


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trial():
    sim = at.simulate(150, rng=5, p_missing=0.1, missing="nan")
    df = sim.scores.rename(columns={"client": "pid", "session": "week", "score": "wai"})
    df["pid"] = "C" + df["pid"].astype(str).str.zfill(3)
    return df.sample(frac=1.0, random_state=2).reset_index(drop=True)  # unsorted rows


@pytest.fixture()
def trial_csv(tmp_path, trial):
    path = tmp_path / "trial.csv"
    trial.to_csv(path, index=False)
    return path


COLS = ["--client", "pid", "--session", "week", "--score", "wai", "--scale", "wai-sr"]


def test_detect_writes_the_tables_and_a_manifest(tmp_path, trial, trial_csv):
    rc, out, err = run("detect", trial_csv, "--out", "labels", *COLS, cwd=tmp_path)
    assert (rc, err) == (0, "")
    direct = at.detect(trial, client="pid", session="week", score="wai", scale="wai-sr")
    own = {"client": "pid", "session": "week", "score": "wai"}  # the files speak the input's names
    for name in ("episodes", "sessions", "clients"):
        got = pd.read_csv(tmp_path / "labels" / f"{name}.csv")
        want = getattr(direct, name)
        assert got.columns.tolist() == [own.get(c, c) for c in want.columns]
        assert len(got) == len(want)
    got = pd.read_csv(tmp_path / "labels" / "episodes.csv")
    assert got["pid"].tolist() == direct.episodes["client"].tolist()
    assert got["start"].tolist() == direct.episodes["start"].tolist()
    assert got["status"].tolist() == direct.episodes["status"].tolist()

    manifest = json.loads((tmp_path / "labels" / "manifest.json").read_text())
    assert manifest["rule"] == "scan"
    assert manifest["params"] == json.loads(json.dumps(direct.params))
    assert manifest["alliance_ts"] == at.__version__
    assert manifest["input"]["sha256"] == hashlib.sha256(trial_csv.read_bytes()).hexdigest()
    assert manifest["input"]["sep"] == ","
    counts = manifest["counts"]
    assert counts["clients"] == 150 and counts["rows"] == len(trial)
    assert counts["episodes"] == len(direct.episodes)
    assert counts["repaired"] + counts["unresolved"] == counts["episodes"]
    assert sum(counts["patterns"].values()) == 150
    # the summary line a data manager reads
    assert out.startswith(f"scan: 150 clients (150 analysed), {len(direct.episodes)} episodes")
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == [
        "by_client.csv", "clients.csv", "episodes.csv", "manifest.json", "methods.md", "sessions.csv"]
    by_client = pd.read_csv(tmp_path / "labels" / "by_client.csv")
    assert by_client["pid"].tolist() == direct.clients["client"].tolist()
    assert "Clients with fewer than 3 observed scores were not analysed" in (tmp_path / "labels" / "methods.md").read_text()


def test_rule_parameters_and_parquet_output(tmp_path, trial, trial_csv):
    rc, out, err = run("detect", trial_csv, "--out", "pq", *COLS, "--rule", "gumz2012", "--param", "k=1.5",
                       "--format", "parquet", "--quiet", cwd=tmp_path)
    assert (rc, out, err) == (0, "", "")
    direct = at.detect(trial, "gumz2012", client="pid", session="week", score="wai", scale="wai-sr", k=1.5)
    got = pd.read_parquet(tmp_path / "pq" / "episodes.parquet")
    pd.testing.assert_frame_equal(got, direct.episodes.rename(columns={"client": "pid"}), check_dtype=False)
    assert json.loads((tmp_path / "pq" / "manifest.json").read_text())["params"]["k"] == 1.5


def test_streaming_and_dask_give_the_in_memory_result(tmp_path, trial):
    # integer ids: every path (in memory, pieces of 350 rows, Dask) writes them as the same
    # nullable integer type, and the Parquet tables are identical, dtypes included
    ordered = trial.sort_values("pid", kind="stable")  # streaming needs clients' rows together
    ordered = ordered.assign(pid=ordered["pid"].str[1:].astype(int))
    ordered.to_parquet(tmp_path / "trial.parquet", index=False, row_group_size=400)
    runs = {
        "mem": [],
        "stream": ["--stream", "--chunk-rows", "350"],
        "dask": ["--dask", "local", "--workers", "2"],
    }
    for name, extra in runs.items():
        rc, _, err = run("detect", "trial.parquet", "--out", name, *COLS, "--quiet", "--format", "parquet", *extra,
                         cwd=tmp_path)
        assert (rc, err) == (0, ""), name
    for table in ("episodes", "sessions", "clients", "by_client"):
        want = pd.read_parquet(tmp_path / "mem" / f"{table}.parquet")
        assert str(want["pid"].dtype) == "Int64"
        for name in ("stream", "dask"):
            got = pd.read_parquet(tmp_path / name / f"{table}.parquet")
            pd.testing.assert_frame_equal(got, want, check_exact=True, obj=f"{name} {table}")
    assert json.loads((tmp_path / "dask" / "manifest.json").read_text())["mode"] == "dask (local)"


def test_missing_column(tmp_path, trial):
    trial.drop(columns="wai").to_csv(tmp_path / "t.csv", index=False)
    rc, out, err = run("detect", "t.csv", "--out", "o", "--client", "pid", "--session", "week", "--score", "wai",
                       cwd=tmp_path)
    assert rc == 2 and out == ""
    assert error_lines(err) == [
        "alliance-ts: error: columns: 1 required column(s) not found: 'wai'; available: 'pid', 'week' "
        "(name yours with client=, session=, score=; on the command line --client, --session, --score)"
    ]
    assert not (tmp_path / "o").exists()  # nothing written


def test_wrong_delimiter_names_the_right_one(tmp_path):
    (tmp_path / "t.csv").write_text("client;session;score\n1;1;50\n1;2;51\n1;3;40\n")
    rc, _, err = run("detect", "t.csv", "--out", "o", "--sep", ",", cwd=tmp_path)
    assert rc == 2
    assert error_lines(err) == [
        "alliance-ts: error: columns: 3 required column(s) not found: 'client', 'session', 'score'; "
        "available: 'client;session;score' (name yours with client=, session=, score=; "
        "on the command line --client, --session, --score)",
        "alliance-ts: error: input: the file was read as one column 'client;session;score': "
        "is the delimiter ';'? (--sep ';')",
    ]
    # without --sep the delimiter is detected and the file labels fine
    rc, out, err = run("detect", "t.csv", "--out", "o", cwd=tmp_path)
    assert (rc, err) == (0, "")
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["input"]["sep"] == ";"


def test_non_numeric_scores_listed_once_with_rows(tmp_path):
    (tmp_path / "t.csv").write_text("client,session,score\n1,1,50\n1,2,abc\n1,3,40\n2,1,x\n2,2,41\n")
    rc, _, err = run("detect", "t.csv", "--out", "o", cwd=tmp_path)
    assert rc == 2
    # file rows 1 and 3 (0-based data rows) hold 'abc' and 'x'; ids are read as written (text)
    assert error_lines(err) == [
        "alliance-ts: error: column 'score': 2 rows with a non-numeric score; "
        "e.g. row 1 (client '1', session 2, value 'abc'); row 3 (client '2', session 1, value 'x')"
    ]


@pytest.mark.parametrize("content, message", [
    ("", "input: 't.csv' is empty"),
    ("client,session,score\n", "data: the table has no rows"),
])
def test_empty_files(tmp_path, content, message):
    (tmp_path / "t.csv").write_text(content)
    rc, _, err = run("detect", "t.csv", "--out", "o", cwd=tmp_path)
    assert rc == 2
    assert error_lines(err) == [f"alliance-ts: error: {message}"]


def test_unreadable_paths(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "notparquet.parquet").write_text("client,session,score\n1,1,50\n")
    cases = {
        "missing.csv": "alliance-ts: error: input: no such file: 'missing.csv'",
        "folder.csv": "alliance-ts: error: input: 'folder.csv' is a folder, not a file",
        "t.foo": "alliance-ts: error: input: no such file: 't.foo'",
    }
    for path, line in cases.items():
        rc, _, err = run("detect", path, "--out", "o", cwd=tmp_path)
        assert (rc, error_lines(err)) == (2, [line]), path
    rc, _, err = run("detect", "notparquet.parquet", "--out", "o", cwd=tmp_path)
    assert rc == 2 and len(error_lines(err)) == 1
    assert err.startswith("alliance-ts: error: input: cannot read 'notparquet.parquet' as parquet: ")
    assert "Traceback" not in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads every file")
def test_permission_denied(tmp_path):
    (tmp_path / "t.csv").write_text("client,session,score\n1,1,50\n")
    (tmp_path / "t.csv").chmod(0)
    rc, _, err = run("detect", "t.csv", "--out", "o", cwd=tmp_path)
    assert (rc, error_lines(err)) == (2, ["alliance-ts: error: input: cannot read 't.csv' (permission denied)"])


def test_unknown_extension_and_bad_options(tmp_path):
    (tmp_path / "t.foo").write_text("client,session,score\n1,1,50\n")
    rc, _, err = run("detect", "t.foo", "--out", "o", "--rule", "nope", "--param", "k", cwd=tmp_path)
    assert rc == 2
    assert error_lines(err) == ["alliance-ts: error: --param: expected NAME=VALUE, got 'k'"]
    rc, _, err = run("detect", "t.foo", "--out", "o", cwd=tmp_path)
    assert error_lines(err) == [
        "alliance-ts: error: input: cannot tell the format of 't.foo' from its extension; use one of "
        ".csv, .dta, .parquet, .pq, .sav, .tsv, .txt, .xlsm, .xlsx, .zsav or give the format "
        "(format=, on the command line --input-format)"
    ]
    rc, _, err = run("detect", "t.foo", "--out", "o", "--input-format", "csv", "--rule", "vshape",
                     "--param", "k=-1", "--param", "nope=2", cwd=tmp_path)
    assert rc == 2
    lines = sorted(error_lines(err))
    assert len(lines) == 2  # both mistakes at once
    assert lines[0].startswith("alliance-ts: error: parameter 'k': ")
    assert lines[1].startswith("alliance-ts: error: parameter 'nope': not a parameter of rule 'vshape'")
    # an argparse mistake also exits 2
    rc, _, err = run("detect", cwd=tmp_path)
    assert rc == 2 and err.rstrip().endswith("error: the following arguments are required: input, --out")


def test_help_everywhere_has_examples(tmp_path):
    rc, out, _ = run("--help", cwd=tmp_path)
    assert rc == 0 and all(c in out for c in ("detect", "rules", "scales", "simulate", "bench"))
    for command in ("detect", "rules", "scales", "simulate", "bench"):
        rc, out, _ = run(command, "--help", cwd=tmp_path)
        assert rc == 0 and "example" in out, command
    rc, out, _ = run("--version", cwd=tmp_path)
    assert (rc, out.strip()) == (0, f"alliance-ts {at.__version__}")


def test_rules_and_scales(tmp_path):
    rc, out, _ = run("rules", "--full", cwd=tmp_path)
    assert rc == 0
    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names == list_rules()["name"].tolist()
    assert "reference:" in out
    rc, out, _ = run("scales", cwd=tmp_path)
    assert rc == 0 and out.splitlines()[0].split()[0] == at.list_scales()["id"].iloc[0]


def test_simulate_writes_the_library_simulation(tmp_path):
    rc, out, _ = run("simulate", "--out", "sim", "--clients", "40", "--seed", "9", "--param", "p_missing=0.2",
                     cwd=tmp_path)
    assert rc == 0
    sim = at.simulate(40, rng=9, p_missing=0.2)
    got = pd.read_csv(tmp_path / "sim" / "scores.csv")
    pd.testing.assert_frame_equal(got, sim.scores, check_dtype=False)
    truth = pd.read_csv(tmp_path / "sim" / "truth.csv")
    assert len(truth) == len(sim.truth)
    assert out.strip() == (f"wrote scores, truth and clients ({len(sim.scores)} scores, "
                           f"{len(sim.truth)} planted episodes) to sim")
    assert json.loads((tmp_path / "sim" / "simulation.json").read_text())["seed"] == 9


def test_bench_small_grid(tmp_path):
    rc, out, _ = run("bench", "--out", "b", "--seeds", "1", "--clients", "30", "--scenarios", "clear_v", cwd=tmp_path)
    assert rc == 0
    df = pd.read_csv(tmp_path / "b" / "accuracy.csv")
    assert set(df["scenario"]) == {"clear_v"}
    rules = list_rules()
    assert set(rules.loc[rules["input"] == "scores", "name"]) <= set(df["rule"])
    # a one-scenario grid still gets both plots
    assert (tmp_path / "b" / "accuracy_f1.png").stat().st_size > 0
    assert (tmp_path / "b" / "accuracy_false_alarms.png").stat().st_size > 0
    rc, _, err = run("bench", "--out", "b", "--scenarios", "nope", cwd=tmp_path)
    assert rc == 2 and err.startswith("alliance-ts: error: unknown scenario(s) ['nope']")


def test_interrupt_and_unexpected_failure_exit_codes(monkeypatch, capsys, trial_csv, tmp_path):
    import alliance_ts.files

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(alliance_ts.files, "detect_file", interrupted)
    out = str(tmp_path / "o")
    assert cli.main(["detect", str(trial_csv), "--out", out]) == 130
    assert capsys.readouterr().err == (f"alliance-ts: interrupted; nothing was written in {out!r} "
                                       "(an earlier output there is unchanged)\n")

    def broken(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(alliance_ts.files, "detect_file", broken)
    assert cli.main(["detect", str(trial_csv), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err == "alliance-ts: unexpected failure: ZeroDivisionError: division by zero\n"


def test_parse_value():
    assert cli.parse_value("3") == 3 and isinstance(cli.parse_value("3"), int)
    assert cli.parse_value("0.25") == 0.25
    assert cli.parse_value("NULL") is None
    assert cli.parse_value("false") is False
    assert cli.parse_value("1, 2.5") == (1.0, 2.5)
    assert cli.parse_value("a,b") == "a,b"
    assert cli.parse_value("bic") == "bic"


def test_the_command_starts_without_scipy_and_sklearn():
    # scipy.stats alone takes about a second to import: the library imports it (and scikit-learn) on first use,
    # so that `alliance-ts rules`, an input error or a monitoring update start fast
    code = "import sys, alliance_ts; print(sorted(m for m in ('scipy.stats', 'sklearn') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_importing_the_library_leaves_signal_handlers_alone():
    # only the alliance-ts script ends quietly on a Ctrl-C while importing (alliance_ts._startup); a notebook
    # or a script that imports the library keeps Python's own KeyboardInterrupt
    code = "import signal, alliance_ts; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stderr


def test_a_ctrl_c_while_the_command_starts_is_a_message(tmp_path):
    pd.DataFrame({"client": [1, 1, 1], "session": [1, 2, 3], "score": [5.0, 3, 5]}).to_csv(tmp_path / "s.csv",
                                                                                           index=False)
    proc = subprocess.Popen(COMMAND + ["detect", "s.csv", "--out", "o"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.05)  # the script is still importing numpy and pandas
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 0:  # (a very fast machine may have finished)
        assert proc.returncode == 130 and "Traceback" not in err
        assert err.endswith("alliance-ts: interrupted; nothing was written in 'o' (an earlier output there is "
                            "unchanged)\n")
        assert not (tmp_path / "o").exists()
