"""The psq rule: Post-Session Questionnaire answers to episodes, worked by hand."""

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at
from alliance_ts.errors import InvalidInputError

NA = np.nan


def answers(rupture, withdrawal=None, resolved=None, client=1, sessions=None):
    n = len(rupture)
    return pd.DataFrame({
        "client": client,
        "session": list(sessions or range(1, n + 1)),
        "rupture": rupture,
        "withdrawal": withdrawal if withdrawal is not None else [1.0] * n,
        "resolved": resolved if resolved is not None else [NA] * n,
    })


def eps(res, cols=("start", "trough", "end", "status")):
    return [tuple(None if pd.isna(v) else v for v in row) for row in res.episodes[list(cols)].itertuples(index=False)]


def test_episodes_by_hand():
    df = answers([1, 4, 3, 1, 5], resolved=[NA, 2, 2, NA, 5])
    res = at.detect(df, rule="psq")
    # session 2: rupture 4 >= 3 opens; resolved 2 < 4 -> open. Session 3: still reported (3),
    # resolved 2 -> open. Session 4: no rupture reported -> repaired at 4 (repair="resolved_or_absent").
    # Session 5: rupture 5 and resolved 5 -> opened and repaired within the session.
    assert eps(res) == [(2, 2, 4, "repaired"), (5, 5, 5, "repaired")]
    assert res.episodes["resolved_within"].tolist() == [False, True]
    assert res.episodes["intensity"].tolist() == [4.0, 5.0]
    assert res.sessions["label"].tolist() == ["none", "rupture", "rupture", "repair", "repair"]
    assert res.sessions["episode"].tolist() == [pd.NA, 1, 1, 1, 2]
    assert res.sessions["score"].tolist() == [1.0, 4.0, 3.0, 1.0, 5.0]  # max of rupture and withdrawal
    c = res.clients.iloc[0]
    assert (c["n_ruptures"], c["n_repaired"], c["pattern"], c["n_confrontation"]) == (2, 2, "repaired", 2)


def test_strict_repair_needs_a_resolved_answer():
    df = answers([1, 4, 3, 1, 5], resolved=[NA, 2, 2, NA, 5])
    res = at.detect(df, rule="psq", repair="resolved")
    # session 4 reports nothing: the episode stays open; session 5 reports a rupture of 5 and
    # rates it resolved -> end 5; the highest answer of the episode (5) is at session 5 too
    assert eps(res) == [(2, 5, 5, "repaired")]
    assert res.episodes["intensity"].tolist() == [5.0]
    assert res.sessions["label"].tolist() == ["none", "rupture", "rupture", "rupture", "repair"]


def test_types_trough_and_unresolved():
    df = answers(rupture=[1, 2, 3, 1, 1], withdrawal=[1, 3, 5, 4, 2], resolved=[NA, 1, 2, 3, NA])
    res = at.detect(df, rule="psq", repair="resolved")
    # session 2 withdrawal 3 opens; session 3 rupture 3 and withdrawal 5 (the highest: trough 3);
    # session 4 withdrawal 4, resolved 3 < 4; session 5 nothing reported, strict repair -> unresolved
    assert eps(res) == [(2, 3, None, "unresolved")]
    assert res.episodes["type"].tolist() == ["both"]
    assert res.episodes["intensity"].tolist() == [5.0]
    assert res.sessions["label"].tolist() == ["none", "unresolved", "unresolved", "unresolved", "unresolved"]
    assert res.clients["n_withdrawal"].tolist() == [1] and res.clients["pattern"].tolist() == ["unresolved"]


def test_missed_questionnaires_inside_episodes():
    # session 3 and 6 have no answers at all; 4 is the repair; 7 opens an unresolved episode
    df = answers([1, 4, NA, 1, 1, NA, 3, NA], withdrawal=[1, 1, NA, 1, 1, NA, 1, NA],
                 resolved=[NA, 1, NA, NA, NA, NA, 2, NA])
    res = at.detect(df, rule="psq")
    assert eps(res) == [(2, 2, 4, "repaired"), (7, 7, None, "unresolved")]
    # 3 lies between two sessions of episode 1 -> rupture; 8 follows the unresolved start -> unresolved
    assert res.sessions["label"].tolist() == ["none", "rupture", "rupture", "repair", "none", "none",
                                              "unresolved", "unresolved"]
    assert res.clients["n_sessions"].tolist() == [5]  # sessions 1, 2, 4, 5, 7 have answers


def test_raters_are_labelled_separately_and_rows_may_come_in_any_order():
    p = answers([1, 4, 1], client="A").assign(rater="patient")
    t = answers([1, 1, 1], client="A").assign(rater="therapist")
    q = answers([5, 1, 1], client="B", resolved=[5, NA, NA]).assign(rater="patient")
    df = pd.concat([t, q, p]).sample(frac=1.0, random_state=3)
    res = at.detect(df, rule="psq", rater="rater")
    assert res.clients[["client", "rater", "n_ruptures"]].values.tolist() == [
        ["A", "patient", 1], ["A", "therapist", 0], ["B", "patient", 1]]
    assert res.episodes[["client", "rater", "start", "end"]].values.tolist() == [["A", "patient", 2, 3], ["B", "patient", 1, 1]]
    assert res.sessions.columns[:3].tolist() == ["client", "rater", "session"]
    ordered = at.detect(df.sort_values(["client", "rater", "session"]), rule="psq", rater="rater")
    pd.testing.assert_frame_equal(res.sessions, ordered.sessions)


def test_other_codings_and_thresholds():
    # answers coded 0-4: rank = answer + 1; rupture_at=4 means "quite a bit" or more (code 3+)
    df = answers([0, 2, 3, 0], withdrawal=[0, 0, 0, 0], resolved=[NA, NA, 1, NA])
    res = at.detect(df, rule="psq", low=0, high=4, rupture_at=4)
    assert eps(res) == [(3, 3, 4, "repaired")]
    assert res.episodes["intensity"].tolist() == [3.0]  # in the data's own coding


def test_too_few_sessions_and_params_are_reported():
    res = at.detect(answers([1, 4]), rule="psq")
    assert res.clients["included"].tolist() == [False]
    assert res.clients["reason"].tolist() == ["fewer than 3 sessions with answers (2)"]
    assert len(res.episodes) == 0
    assert len(at.detect(answers([1, 4]), rule="psq", min_sessions=1).episodes) == 1
    assert res.params["rupture_at"] == 3.0 and res.params["repair"] == "resolved_or_absent"


def test_every_problem_at_once():
    df = answers([1, 6, "x", 1]).assign(rater=["patient", None, "patient", "patient"])
    df.loc[3, "session"] = 1  # a duplicate of session 1 for the patient
    with pytest.raises(InvalidInputError) as info:
        at.detect(df, rule="psq", rater="rater", resolved=None)
    wheres = sorted(p.where for p in info.value.problems)
    # one answer outside 1-5 and one not a number (two problems of the rupture column),
    # a missing rater and the patient's session 1 twice: all reported together
    assert wheres == ["column 'rater'", "column 'rupture'", "column 'rupture'",
                      "columns 'client' x 'rater' x 'session'"]
    with pytest.raises(InvalidInputError) as info:
        at.detect(answers([1, 2, 3]), rule="psq", withdrawal="withdraw", rupture_at=9, scale="wai")
    messages = " | ".join(str(p) for p in info.value.problems)
    assert "rupture_at" in messages and "scale" in messages and "'withdraw'" in messages


def test_streaming_gives_the_in_memory_result(tmp_path):
    # psq is an ordinary rule now: the file read in pieces of whole clients (here
    # 2 rows a piece) is labelled exactly as in memory, rater column and items included
    from alliance_ts.files import detect_file

    rows = [answers([1, 4, 1, 2], client=c).assign(rater=r) for c in (1, 2, 3) for r in ("patient", "therapist")]
    df = pd.concat(rows, ignore_index=True)
    path = tmp_path / "psq.csv"
    df.to_csv(path, index=False)
    a = detect_file(path, tmp_path / "mem", rule="psq", params={"rater": "rater"})
    b = detect_file(path, tmp_path / "stream", rule="psq", params={"rater": "rater"}, stream=True, chunk_rows=2)
    assert a["counts"] == b["counts"] and a["counts"]["episodes"] == 6  # one episode per client and rater
    for name in ("episodes", "sessions", "clients"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "mem" / f"{name}.csv"),
                                      pd.read_csv(tmp_path / "stream" / f"{name}.csv"))
    got = pd.read_csv(tmp_path / "stream" / "sessions.csv")
    assert got.columns.tolist()[:2] == ["client", "rater"] and "rupture" in got.columns


def test_simulated_questionnaires_find_planted_ruptures():
    sim = at.simulate(400, rng=12, psq=True)
    res = at.detect(sim.psq, rule="psq", rater="rater")
    patient = at.evaluate(res.for_rater("patient"), sim)
    therapist = at.evaluate(res.for_rater("therapist"), sim)
    # the simulation reports a planted rupture session with probability .8 (patient) and
    # .6 (therapist): nearly every episode has at least one reported session
    assert patient.recall > 0.85 and therapist.recall > 0.7
    assert patient.recall > therapist.recall


def test_command_counts_clients_and_raters(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    # two clients x two raters; only client 2's patient reports a rupture (4 >= 3 at session 2,
    # gone at session 3 -> repaired): 4 client-rater courses, 1 episode
    rows = []
    for client in (1, 2):
        for rater in ("patient", "therapist"):
            hit = client == 2 and rater == "patient"
            rows.append(answers([1, 4 if hit else 1, 1], client=client).assign(rater=rater))
    pd.concat(rows).to_csv(tmp_path / "psq.csv", index=False)
    script = Path(sys.executable).parent / "alliance-ts"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "alliance_ts"]
    done = subprocess.run(command + ["detect", "psq.csv", "--out", "out", "--rule", "psq", "--param", "rater=rater",
                                     "--quiet"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import json

    counts = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]
    assert (counts["clients"], counts["client_rater_rows"], counts["raters"]) == (2, 4, {"patient": 2, "therapist": 2})
    assert (counts["episodes"], counts["repaired"], counts["patterns"]["repaired"]) == (1, 1, 1)
    done = subprocess.run(command + ["detect", "psq.csv", "--out", "out2", "--rule", "psq", "--param", "rater=rater"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.stdout.startswith("psq: 2 clients x 2 raters = 4 client-rater courses (4 analysed), 1 episodes")
