"""``alliance-ts monitor`` as a user runs it (a subprocess): create, append, refuse bad batches unchanged."""

import json

import pandas as pd
import pytest
from cli_runner import run

import alliance_ts as at


def write(path, rows):
    pd.DataFrame(rows, columns=["pid", "week", "srs"]).to_csv(path, index=False)


@pytest.fixture
def weeks(tmp_path):
    # client "007" drops to 30 in week 2 (<= 36: alert) and is back at 38 in week 3 (repaired);
    # client "7" stays at 39-40
    write(tmp_path / "w1.csv", [["007", 1, 38], ["7", 1, 40]])
    write(tmp_path / "w2.csv", [["007", 2, 30], ["7", 2, 39]])
    write(tmp_path / "w3.csv", [["007", 3, 38], ["7", 3, 40]])
    return tmp_path


COLUMNS = ["--client", "pid", "--session", "week", "--score", "srs"]


def test_create_and_append(weeks):
    code, out, err = run("monitor", "w1.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "srs36",
                         *COLUMNS, cwd=weeks)
    assert code == 0, err
    assert "srs36: 2 session(s) of 2 client(s); 0 alert(s) opened" in out
    for week in ("w2.csv", "w3.csv"):
        code, out, err = run("monitor", week, "--state", "state.json", "--out", "alerts.csv", *COLUMNS,
                             "--caseload", "caseload.csv", cwd=weeks)
        assert code == 0, err
    alerts = pd.read_csv(weeks / "alerts.csv", dtype={"pid": str})
    assert list(alerts.columns[:6]) == ["pid", "week", "srs", "alert", "new", "repaired"]
    assert alerts[["pid", "week", "alert", "new", "repaired"]].values.tolist() == [
        ["007", 1, False, False, False], ["7", 1, False, False, False],
        ["007", 2, True, True, False], ["7", 2, False, False, False],
        ["007", 3, False, False, True], ["7", 3, False, False, False]]
    assert (weeks / "alerts.csv").read_text().count("pid,week") == 1  # header once
    assert alerts.loc[2, "evidence"] == 30 - 36
    # the same as the batch run on the three weeks
    whole = pd.concat([pd.read_csv(weeks / f"w{i}.csv", dtype={"pid": str}) for i in (1, 2, 3)])
    batch = at.monitor(whole, rule="srs36", client="pid", session="week", score="srs").sessions
    assert batch["alert"].tolist() == alerts.sort_values(["pid", "week"])["alert"].tolist()
    assert pd.read_csv(weeks / "caseload.csv").empty  # week 3 repaired the only alert
    state = json.loads((weeks / "state.json").read_text())
    assert state["rule"] == "srs36" and state["clients"] == ["007", "7"]


def test_bad_batch_changes_nothing(weeks):
    assert run("monitor", "w1.csv", "--state", "state.parquet", "--out", "alerts.csv", "--rule", "srs36", *COLUMNS,
               cwd=weeks)[0] == 0
    assert run("monitor", "w2.csv", "--state", "state.parquet", "--out", "alerts.csv", *COLUMNS, cwd=weeks)[0] == 0
    before = {name: (weeks / name).read_bytes() for name in ("state.parquet", "alerts.csv")}
    # week 2 again (sent twice), and a batch with an out-of-range score and week 1 out of order
    write(weeks / "bad.csv", [["007", 1, 35], ["7", 3, 45]])
    for batch, expected in (("w2.csv", "2 rows with a session at or before the client's last session"),
                            ("bad.csv", "outside the scale srs:total [0, 40]")):
        code, out, err = run("monitor", batch, "--state", "state.parquet", "--out", "alerts.csv", *COLUMNS,
                             cwd=weeks)
        assert code == 2 and expected in err and "Traceback" not in err
        assert {name: (weeks / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in weeks.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_state_mistakes(weeks):
    code, _, err = run("monitor", "w1.csv", "--state", "state.json", "--out", "alerts.csv", *COLUMNS, cwd=weeks)
    assert code == 2 and "does not exist: name the rule" in err
    assert not (weeks / "state.json").exists() and not (weeks / "alerts.csv").exists()
    code, _, err = run("monitor", "w1.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "drop",
                       *COLUMNS, cwd=weeks)
    assert code == 2 and "needs its prior noise SD" in err
    assert run("monitor", "w1.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "drop", "--param",
               "s0=2", "--param", "d0=4", "--scale", "srs", *COLUMNS, cwd=weeks)[0] == 0
    code, _, err = run("monitor", "w2.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "srs36",
                       *COLUMNS, cwd=weeks)
    assert code == 2 and "written by rule 'drop', not 'srs36'" in err
    code, _, err = run("monitor", "w2.csv", "--state", "state.json", "--out", "alerts.csv", "--param", "k=3",
                       *COLUMNS, cwd=weeks)
    assert code == 2 and "only apply when a state is created" in err
    (weeks / "state.json").write_text((weeks / "state.json").read_text()[:100])
    code, _, err = run("monitor", "w2.csv", "--state", "state.json", "--out", "alerts.csv", *COLUMNS, cwd=weeks)
    assert code == 2 and "cannot be read as a monitoring state" in err and "Traceback" not in err
    code, _, err = run("monitor", "w1.csv", "--state", "s.json", "--out", "alerts.txt", "--rule", "srs36", *COLUMNS,
                       cwd=weeks)
    assert code == 2 and "the alerts file is a CSV file" in err


def test_prior_from_a_reference_file(tmp_path):
    ref = at.simulate(40, rng=2, scale="srs", baseline=0.92).scores
    ref.to_csv(tmp_path / "ref.csv", index=False)
    new = at.simulate(10, rng=3, scale="srs", baseline=0.92).scores
    new[new["session"] <= 4].to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run("monitor", "new.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "drop",
                         "--prior", "ref.csv", "--scale", "srs", cwd=tmp_path)
    assert code == 0, err
    prior = at.fit_prior(ref, scale="srs")
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["params"]["s0"] == prior.s0 and state["prior"]["source"] == "reference file ref.csv"
    # the ids are read as text from the CSV file ("1", "10", "2", ...), as the batch run reads them here
    expected = at.monitor(pd.read_csv(tmp_path / "new.csv", dtype={"client": str}), rule="drop", scale="srs",
                          prior=prior).sessions
    got = pd.read_csv(tmp_path / "alerts.csv", dtype={"client": str})
    assert got["client"].tolist() == expected["client"].tolist()
    assert got["alert"].tolist() == expected["alert"].tolist()
    pd.testing.assert_series_equal(got["evidence"], expected["evidence"], check_names=False)
