"""Observer-coded ruptures (3RS): segment codes, the observer rule, coder agreement, convergence, simulation."""

import math

import numpy as np
import pandas as pd
import pytest
from cli_runner import run

import alliance_ts as at
from alliance_ts import InvalidInputError
from alliance_ts.effects import SmallGroupWarning

NA = np.nan


def segment_codes() -> pd.DataFrame:
    """One coder's codes of client '007': marker subtypes per 5-minute segment (see the test below)."""
    rows = [
        # session, segment, denial, minimal, complaint, strategy
        (1, 1, 0, 0, 0, 0), (1, 2, 0, 0, 0, 0), (1, 3, 0, 0, 0, 0),
        (2, 1, 1, 1, 0, 0), (2, 2, 0, 0, 0, 1), (2, 3, NA, NA, NA, NA),
        (3, 1, 0, 0, 2, 1), (3, 2, 1, 0, 0, 0), (3, 3, 0, 0, 0, 0),
        (4, 1, NA, NA, NA, NA), (4, 2, NA, NA, NA, NA),
        (5, 1, 0, 0, 1, 0), (5, 2, 0, 0, 0, 2),
        (6, 1, 0, 0, 0, 0), (6, 2, 0, 0, 0, 0),
    ]
    df = pd.DataFrame(rows, columns=["session", "segment", "denial", "minimal", "complaint", "strategy"])
    df.insert(0, "client", "007")
    return df.sample(frac=1.0, random_state=3)  # row order never matters


SUBTYPES = dict(withdrawal=["denial", "minimal"], confrontation="complaint", resolution="strategy")


def test_segment_codes_make_sessions_and_episodes_by_hand():
    res = at.detect(segment_codes(), rule="observer", **SUBTYPES)
    s = res.sessions.set_index("session")
    # session 2: W = 1 + 1 (denial, minimal in segment 1) = 2, C = 0; segments coded: 1 and 2 (segment 3 is
    # blank); strategies after the last marked segment (1): segment 2's one strategy -> resolution_late = 1
    assert s.loc[2, ["withdrawal", "confrontation", "segments", "resolution", "resolution_late"]].tolist() == \
        [2, 0, 2, 1, 1]
    # session 3: W = 1, C = 2, 3 segments -> 3 markers / 3 segments = 1.0; the last marker is in segment 2 and no
    # strategy at or after it (the strategy of segment 1 came before) -> not resolved within the session
    assert s.loc[3, ["withdrawal", "confrontation", "segments", "score", "resolution_late"]].tolist() == \
        [1, 2, 3, 1.0, 0]
    # session 4 was not coded (every marker cell blank): not observed, never "no rupture"
    assert math.isnan(s.loc[4, "score"]) and pd.isna(s.loc[4, "rupture"])
    # session 5: C = 1 of 2 segments -> 0.5; strategies after the marker (segment 2: 2) -> resolved
    assert s.loc[5, ["score", "resolution_late"]].tolist() == [0.5, 2]
    # minutes coded: segments x 5 minutes (session 2: 2 coded segments -> 10; session 3: 3 -> 15)
    assert s.loc[[2, 3], "minutes_coded"].tolist() == [10.0, 15.0]
    assert s["rupture"].tolist() == [False, True, True, pd.NA, True, False]
    e = res.episodes
    # episode 1: session 2, resolved within it (start == end); episode 2: opens at 3 unresolved, still open
    # at the uncoded session 4, resolved within session 5 -> end 5; markers of both kinds; the most markers
    # per segment (1.0) at session 3
    assert e[["start", "trough", "end", "status"]].values.tolist() == [[2, 2, 2, "repaired"], [3, 3, 5, "repaired"]]
    assert e["type"].astype(str).tolist() == ["withdrawal", "both"]
    assert e["frequency"].tolist() == [1.0, 1.0] and e["resolved_within"].tolist() == [True, False]
    assert s.loc[4, "label"] == "rupture"  # the uncoded session lies inside episode 2
    c = res.clients.iloc[0]
    assert c["client"] == "007" and c["n_sessions"] == 5  # 5 coded sessions of 6
    assert (c["n_confrontation"], c["n_withdrawal"]) == (1, 2)


def session_rows(w, c, resolved=None, client=1, coder=None):
    df = pd.DataFrame({"client": client, "session": range(1, len(w) + 1), "w": w, "c": c})
    if resolved is not None:
        df["res"] = resolved
    if coder is not None:
        df["coder"] = coder
    return df


def test_resolution_rating_and_repair_options():
    df = session_rows([0, 1, 0, 0], [0, 0, 1, 0], [NA, 2, 3, NA])
    kw = dict(segment=None, withdrawal="w", confrontation="c", resolved="res")
    # session 2 rupture rated 2 (< 4): open; session 3 rated 3: still open; session 4 has no rupture -> repaired
    e = at.detect(df, rule="observer", **kw).episodes
    assert e[["start", "end", "status"]].values.tolist() == [[2, 4, "repaired"]]
    assert e["type"].astype(str).tolist() == ["both"]
    # repair="resolved": a session without a rupture does not repair it -> unresolved
    e = at.detect(df, rule="observer", repair="resolved", **kw).episodes
    assert e["status"].tolist() == ["unresolved"] and pd.isna(e["end"].iloc[0])
    # resolved_at=3: session 3's rating 3 resolves it within session 3
    e = at.detect(df, rule="observer", resolved_at=3, **kw).episodes
    assert e[["start", "end"]].values.tolist() == [[2, 3]]


def test_auto_uses_the_rating_where_given_and_strategies_elsewhere():
    df = session_rows([0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [NA, 2, NA, NA, NA]).assign(s=[0, 3, 0, 1, 0])
    kw = dict(segment=None, withdrawal="w", confrontation="c", resolved="res", resolution="s")
    # session 2: rated 2 -> not resolved, although 3 strategies were coded; session 3 no rupture -> repaired;
    # session 4: no rating, 1 strategy (the marker and the strategy share the one row) -> resolved within
    e = at.detect(df, rule="observer", **kw).episodes
    assert e[["start", "end", "resolved_within"]].values.tolist() == [[2, 3, False], [4, 4, True]]
    e = at.detect(df, rule="observer", resolved_by="strategies", **kw).episodes
    assert e[["start", "end", "resolved_within"]].values.tolist() == [[2, 2, True], [4, 4, True]]


def test_significance_threshold_and_preset():
    codes = session_rows([1, 1, 1, 0], [0, 0, 0, 0]).assign(sig=[2, 4, 1, NA])
    kw = dict(segment=None, withdrawal="w", confrontation="c")
    # every session 1-3 has a marker: one episode from 1, repaired at 4 (no rupture)
    assert at.detect(codes, rule="observer", **kw).episodes["start"].tolist() == [1]
    # only session 2 reaches significance 3 -> its own episode, repaired at 3 (no significant rupture)
    e = at.detect(codes, rule="observer_significant", significance="sig", **kw).episodes
    assert e[["start", "end", "significance"]].values.tolist() == [[2, 3, 4.0]]


def test_coders_are_separate_courses():
    a = session_rows([0, 1, 0, 0], [0, 0, 0, 0], coder="A")
    b = session_rows([0, 0, 0, 1], [0, 0, 0, 0], coder="B")
    res = at.detect(pd.concat([b, a]), rule="observer", segment=None, withdrawal="w", confrontation="c",
                    coder="coder")
    assert res.episodes[["coder", "start", "status"]].values.tolist() == [["A", 2, "repaired"],
                                                                         ["B", 4, "unresolved"]]
    assert res.for_coder("B").episodes["start"].tolist() == [4]
    # one client, two coders: the summary and repr count the client once and its two courses
    assert "Clients: 1 in the input, 2 client x coder courses: 2 analysed, 0 not analysed" in res.summary()
    assert repr(res) == "<Detection rule='observer': 1 clients (2 client x coder courses), 2 episodes, 8 sessions>"
    assert "coder" not in res.for_coder("A").clients.columns


def test_every_problem_with_codes_at_once():
    df = segment_codes().sort_index().astype({"complaint": object})
    df.loc[0, "denial"] = -1          # a negative count
    df.loc[3, "minimal"] = 1.5        # not a whole number
    df.loc[6, "complaint"] = "x"      # not a number
    df.loc[7, "segment"] = 1          # session 3 segment 1 twice
    df.loc[12, "segment"] = NA        # codes without a segment number
    with pytest.raises(InvalidInputError) as info:
        at.detect(df, rule="observer", **SUBTYPES)
    text = str(info.value)
    assert "5 problems" in text
    assert "column 'denial': 1 row with a negative count" in text and "row 0 (client '007', session 1" in text
    assert "column 'minimal': 1 row with a count that is not a whole number" in text
    assert "column 'complaint': 1 row with a non-numeric marker count" in text
    assert "'segment': 2 rows repeat a segment of the same session" in text
    assert "column 'segment': 1 row with codes but no segment number" in text


def test_ratings_out_of_range_and_varying_within_a_session():
    df = segment_codes().sort_index().assign(res=NA)
    df.loc[[3, 4], "res"] = [2, 3]     # session 2's global rating written twice, differently
    df.loc[6, "res"] = 9               # outside 1-5
    with pytest.raises(InvalidInputError) as info:
        at.detect(df, rule="observer", resolved="res", **SUBTYPES)
    text = str(info.value)
    assert "column 'res': 1 row with a rating outside the range [1, 5]" in text
    assert "hold different resolved ratings within 1 session(s)" in text


def test_parameter_and_column_problems():
    with pytest.raises(InvalidInputError) as info:
        at.detect(segment_codes(), rule="observer", withdrawal=None, confrontation=None, significance_at=3)
    text = str(info.value)
    assert "name the marker columns of at least one" in text and "needs the significance column" in text
    with pytest.raises(InvalidInputError) as info:
        at.detect(segment_codes(), rule="observer", withdrawal=["denial", "gone"], confrontation="complaint",
                  coder="who")
    assert "2 required column(s) not found: 'who', 'gone'" in str(info.value)
    assert "segment=, withdrawal=, confrontation=" in str(info.value)  # the observer rule's own hint
    with pytest.raises(InvalidInputError, match="each role needs its own column"):
        at.detect(segment_codes(), rule="observer", withdrawal="denial", confrontation="denial")


def test_declared_missing_codes_in_marker_cells_are_counted():
    df = segment_codes().sort_index()
    df.loc[0, "denial"] = 99
    res = at.detect(df, rule="observer", missing=[99], **SUBTYPES)
    assert res.info["missing_counts"] == {99.0: 1}
    # the cell is blank now; the segment is still coded by its other cells -> session 1 unchanged
    assert res.sessions.loc[0, ["withdrawal", "segments"]].tolist() == [0, 3]


def test_streamed_file_equals_in_memory(tmp_path):
    from alliance_ts.files import detect_file

    df = pd.concat([segment_codes().assign(client=c) for c in ("007", "010", "011")], ignore_index=True)
    path = tmp_path / "codes.csv"
    df.to_csv(path, index=False)
    params = {"withdrawal": ("denial", "minimal"), "confrontation": "complaint", "resolution": "strategy"}
    a = detect_file(path, tmp_path / "mem", rule="observer", params=params)
    b = detect_file(path, tmp_path / "stream", rule="observer", params=params, stream=True, chunk_rows=4)
    assert a["counts"]["episodes"] == 6 and a["counts"] == b["counts"]
    for name in ("episodes", "sessions", "clients"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "mem" / f"{name}.csv", dtype={"client": str}),
                                      pd.read_csv(tmp_path / "stream" / f"{name}.csv", dtype={"client": str}))
    assert pd.read_csv(tmp_path / "mem" / "clients.csv", dtype=str)["client"].tolist() == ["007", "010", "011"]


def test_command_line_labels_an_observer_file(tmp_path):
    codes = pd.concat([segment_codes().assign(coder=k) for k in ("A", "B")], ignore_index=True)
    codes.to_csv(tmp_path / "codes.csv", index=False)
    status, out, err = run("detect", "codes.csv", "--rule", "observer", "--param", "withdrawal=denial,minimal",
                           "--param", "confrontation=complaint", "--param", "resolution=strategy",
                           "--param", "coder=coder", "--out", "out", cwd=tmp_path)
    assert status == 0, err
    e = pd.read_csv(tmp_path / "out" / "episodes.csv", dtype={"client": str})
    assert e[["client", "coder", "start", "end"]].values.tolist() == [
        ["007", "A", 2, 2], ["007", "A", 3, 5], ["007", "B", 2, 2], ["007", "B", 3, 5]]
    assert "coded by observers" in (tmp_path / "out" / "methods.md").read_text()
    codes.loc[0, "denial"] = -2
    codes.to_csv(tmp_path / "bad.csv", index=False)
    status, out, err = run("detect", "bad.csv", "--rule", "observer", "--param", "withdrawal=denial,minimal",
                           "--param", "confrontation=complaint", "--out", "bad_out", cwd=tmp_path)
    assert status != 0 and "column 'denial': 1 row with a negative count" in err and "Traceback" not in err
    assert not (tmp_path / "bad_out").exists()


def test_spss_file_labels_the_observer_score(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    at.detect(segment_codes(), rule="observer", **SUBTYPES).to_file(tmp_path / "out", format="sav")
    _, meta = pyreadstat.read_sav(tmp_path / "out" / "sessions.sav", metadataonly=True)
    labels = meta.column_names_to_labels
    assert labels["score"] == "Session score by the rule (psq: higher rupture answer; observer: markers per segment)"
    assert labels["minutes_coded"].startswith("Minutes of the session coded")


def test_methods_paragraph_states_the_criterion():
    text = at.detect(segment_codes(), rule="observer", **SUBTYPES).methods()
    assert "Ruptures coded by observers" in text
    assert "at least 1 rupture marker(s) (withdrawal and confrontation markers counted together)" in text
    assert "coded in segments (segment_minutes = 5, which only sets the reported minutes coded)" in text
    assert "a resolution strategy was coded in the segment of the last rupture marker or later" in text
    assert "library's choices" in text and "Rupture Resolution Rating System" in text


# --------------------------------------------------------------------------
# coder agreement


def two_coders():
    # withdrawal counts of 5 sessions by coder A and coder B (one row per session)
    a = session_rows([0, 1, 2, 3, 4], [0] * 5, coder="A")
    b = session_rows([0, 0, 2, 4, 4], [0] * 5, coder="B")
    return at.detect(pd.concat([a, b]), rule="observer", segment=None, withdrawal="w", confrontation="c",
                     coder="coder")


def test_icc_against_the_anova_mean_squares():
    rel = at.coder_agreement(two_coders())
    icc = rel.icc[rel.icc["measure"] == "withdrawal"].set_index("type")["icc"]
    # n = 5 sessions, k = 2 coders: A = 0 1 2 3 4, B = 0 0 2 4 4; grand mean 2, coder means 2 and 2.
    # Sessions: SS = 2 * (2^2 + 1.5^2 + 0 + 1.5^2 + 2^2) = 25, MSR = 25 / 4 = 6.25.
    # Coders: SS = 0, MSC = 0. Total SS = (4+1+0+1+4) + (4+4+0+4+4) = 26; error SS = 26 - 25 - 0 = 1, MSE = 1/4.
    msr, msc, mse, n, k = 6.25, 0.0, 0.25, 5, 2
    assert icc["ICC(C,1)"] == pytest.approx((msr - mse) / (msr + (k - 1) * mse))          # 6 / 6.5
    assert icc["ICC(A,1)"] == pytest.approx((msr - mse) / (msr + (k - 1) * mse + k / n * (msc - mse)))  # 6 / 6.4
    assert icc["ICC(C,k)"] == pytest.approx((msr - mse) / msr)                             # 6 / 6.25
    assert icc["ICC(A,k)"] == pytest.approx((msr - mse) / (msr + (msc - mse) / n))         # 6 / 6.2
    assert (rel.icc.loc[rel.icc["measure"] == "withdrawal", "n_sessions"] == 5).all()
    # every confrontation count is 0: no ICC, not an error
    assert rel.icc.loc[rel.icc["measure"] == "confrontation", "icc"].isna().all()
    # rupture: A = no yes yes yes yes, B = no no yes yes yes -> p_o = 4/5, p_e = .8 * .6 + .2 * .4 = .56
    kappa = rel.kappa.set_index("label")
    assert kappa.loc["rupture", "kappa"] == pytest.approx((0.8 - 0.56) / (1 - 0.56))
    assert kappa.loc["rupture", "percent"] == pytest.approx(0.8) and kappa.loc["rupture", "n"] == 5
    table = rel.table()
    assert table.loc[0, "measure"] == "withdrawal" and table.loc[0, "ICC(A,1)"].startswith("0.94 [")


def test_coder_agreement_needs_coders():
    one = at.detect(session_rows([0, 1, 0], [0, 0, 0]), rule="observer", segment=None, withdrawal="w",
                    confrontation="c")
    with pytest.raises(InvalidInputError, match="labelled one coder"):
        at.coder_agreement(one)
    with pytest.raises(InvalidInputError, match="not in the result"):
        at.coder_agreement(two_coders(), coders=["A", "Z"])
    with pytest.raises(InvalidInputError, match="not session columns"):
        at.coder_agreement(two_coders(), measures=["nope"])


# --------------------------------------------------------------------------
# convergence and rupture types


def test_convergence_by_hand():
    conv = at.convergence({"obs": two_coders()})
    assert conv.sources == ("obs (A)", "obs (B)")
    row = conv.pairs[conv.pairs["level"] == "session"].iloc[0]
    assert row["n"] == 5 and row["kappa"] == pytest.approx(0.24 / 0.44)
    assert row["kappa_low"] < row["kappa"] < row["kappa_high"]
    # index = markers per session: A 0 1 2 3 4, B 0 0 2 4 4 -> deviations -2 -1 0 1 2 and -2 -2 0 2 2:
    # r = (4 + 2 + 0 + 2 + 4) / sqrt(10 * 16) = 12 / sqrt(160)
    r = 12 / math.sqrt(160)
    assert row["r"] == pytest.approx(r)
    half = 1.959964 / math.sqrt(5 - 3)
    assert row["r_low"] == pytest.approx(math.tanh(math.atanh(r) - half), abs=1e-6)
    client = conv.pairs[conv.pairs["level"] == "client"].iloc[0]
    assert client["n"] == 1 and client["percent"] == 1.0 and math.isnan(client["kappa"])
    assert conv.matrix("session").loc["obs (A)", "obs (B)"] == pytest.approx(0.24 / 0.44)


def test_convergence_of_score_rules_uses_rupture_spans():
    scores = pd.DataFrame({"client": 1, "session": range(1, 7), "score": [5.0, 5, 5, 3, 5, 5]})
    vshape = at.detect(scores, rule="vshape", pooled_sd=0.5)
    codes = session_rows([0, 0, 0, 1, 0, 0], [0] * 6)
    obs = at.detect(codes, rule="observer", segment=None, withdrawal="w", confrontation="c")
    conv = at.convergence([vshape, obs])
    units = conv.units["session"]
    # vshape: the drop at 4 is repaired at 5, so session 4 (not the repair session 5) is the rupture session;
    # the observer codes a rupture at 4 only -> full agreement
    assert units.loc[units["source"] == "vshape", "rupture"].tolist() == [False, False, False, True, False, False]
    assert conv.pairs.loc[0, "kappa"] == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="at least two sources"):
        at.convergence([vshape])


def test_carry_type_onto_score_episodes():
    scores = pd.DataFrame({"client": 1, "session": range(1, 7), "score": [5.0, 5, 5, 3, 5, 5]})
    rec = at.detect(scores, rule="vshape", pooled_sd=0.5)   # one episode: start 4, end 5
    codes = session_rows([0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0])
    obs = at.detect(codes, rule="observer", segment=None, withdrawal="w", confrontation="c")  # start 3, end 4
    out = at.carry_type(rec, obs)
    assert out[["start", "end"]].values.tolist() == [[4, 5]]
    assert out["type"].astype(str).tolist() == ["confrontation"] and out["n_typed"].tolist() == [1]
    codes = session_rows([0, 1, 0, 0, 0, 0], [0] * 6)  # a withdrawal at 2, repaired at 3: [2, 3] vs [4 - 1, 5 + 1]
    obs = at.detect(codes, rule="observer", segment=None, withdrawal="w", confrontation="c")
    assert at.carry_type(rec, obs)["type"].astype(str).tolist() == ["withdrawal"]
    assert at.carry_type(rec, obs, margin=0)["type"].isna().all()
    with pytest.raises(InvalidInputError, match="gives no rupture types"):
        at.carry_type(rec, rec)


def test_outcomes_by_rupture_type():
    rows = []
    for client in range(1, 7):
        kind = "c" if client <= 3 else "w"
        rows.append(session_rows([0, int(kind == "w"), 0], [0, int(kind == "c"), 0], client=client))
    res = at.detect(pd.concat(rows), rule="observer", segment=None, withdrawal="w", confrontation="c")
    outcomes = pd.DataFrame({"client": range(1, 7), "y": [1.0, 2, 3, 4, 5, 6]})
    with pytest.warns(SmallGroupWarning):
        table = at.effects.outcome_association(res, outcomes, outcome="y", by_phase=False)
    row = table.set_index("contrast").loc["confrontation_vs_withdrawal"]
    # confrontation clients 1 2 3 (mean 2, SD 1) vs withdrawal clients 4 5 6 (mean 5, SD 1): d = (2 - 5) / 1 = -3;
    # r is the point-biserial correlation: (M1 - M2) / sigma * sqrt(p q) with the population SD of 1..6,
    # sigma = sqrt(35 / 12), and p = q = 1/2 -> -3 / sqrt(35 / 12) * 0.5
    assert (row["n1"], row["n2"]) == (3, 3)
    assert row["d"] == pytest.approx(-3.0) and row["r"] == pytest.approx(-3 / math.sqrt(35 / 12) * 0.5)
    # no rupture was resolved within its session: the first group is empty
    assert table.set_index("contrast").loc["resolved_within_vs_not", "n1"] == 0
    scores = at.detect(at.simulate(30, rng=1).scores, scale="wai-sr")
    with pytest.raises(InvalidInputError, match="need\\(s\\) rupture types"):
        at.effects.outcome_association(scores, outcomes, outcome="y", contrast="confrontation_vs_withdrawal")


# --------------------------------------------------------------------------
# simulated observer codes


def test_simulated_codes_follow_the_planted_episodes():
    plain = at.simulate(120, rng=8)
    sim = at.simulate(120, rng=8, observer=True, psq=True)
    pd.testing.assert_frame_equal(plain.scores, sim.scores)  # codes come from streams of their own
    assert set(sim.truth["type"]) == {"confrontation", "withdrawal"}
    o = sim.observer
    assert o.columns.tolist() == ["client", "coder", "session", "segment", "withdrawal", "confrontation",
                                  "resolution", "significance", "resolved", "contribution"]
    assert len(o) == 2 * 10 * len(sim.scores)  # two coders x 10 segments x every observed session
    res = at.detect(o, rule="observer_significant", coder="coder", resolved="resolved", resolution="resolution")
    rel = at.coder_agreement(res)
    icc = rel.icc.set_index(["measure", "type"])["icc"]
    # coders mark a true marker with probability .85 and add false marks: ICC(A,1) of the counts near .8-.9
    assert 0.75 < icc[("withdrawal", "ICC(A,1)")] < 0.97
    assert 0.75 < icc[("confrontation", "ICC(A,1)")] < 0.97
    ev = at.evaluate(res.for_coder("A"), sim)
    assert ev.recall > 0.9 and ev.false_alarm_rate < 0.4
    # the observer sees the planted type: matched episodes carry it (alone or with the other kind)
    e = res.for_coder("A").episodes.merge(sim.truth, on="client", suffixes=("", "_true"))
    e = e[(e["start"] - e["start_true"]).abs() <= 1]
    seen = [str(got) in (t, "both") for t, got in zip(e["type_true"], e["type"])]
    exact = (e["type"].astype(str) == e["type_true"]).mean()
    # alone in about half (markers of the other kind in the same sessions make the rest "both")
    assert np.mean(seen) == 1.0 and exact > 0.45


# --------------------------------------------------------------------------
# found by a review as a user would


def test_ratings_of_a_session_without_marker_codes_are_an_error():
    # session 2 has a resolution rating but every marker cell empty: not coded, or nothing seen?
    df = session_rows([1, NA, 1, 1], [0, NA, 0, 0], [2, 1, 2, 2])
    with pytest.raises(InvalidInputError, match=r"hold ratings of 1 session\(s\) in rows whose code cells"):
        at.detect(df, rule="observer", segment=None, withdrawal="w", confrontation="c", resolved="res")
    # the coder says "nothing seen" with zeros: session 2 has no rupture and repairs the episode of session 1
    df.loc[1, ["w", "c"]] = 0
    e = at.detect(df, rule="observer", segment=None, withdrawal="w", confrontation="c", resolved="res").episodes
    assert e["start"].tolist() == [1, 3] and e["end"].iloc[0] == 2 and e["status"].tolist() == ["repaired",
                                                                                                "unresolved"]


def test_presence_marks_as_booleans_and_empty_text_cells():
    df = session_rows([0, 1, 0], [0, 0, 0])
    df["w"] = df["w"].astype(bool)
    df["c"] = pd.Series(["", " ", "0"], dtype=object)  # a coded row's empty cell is "not marked"
    res = at.detect(df, rule="observer", segment=None, withdrawal="w", confrontation="c")
    assert res.sessions["withdrawal"].tolist() == [0, 1, 0] and res.episodes["start"].tolist() == [2]


def test_few_coded_sessions_per_case():
    # 3RS studies often code two sessions per case: with min_sessions=3 the clients are kept, with a reason
    codes = pd.concat([session_rows([1, 0], [0, 0], client=k, coder=c) for k in (1, 2, 3) for c in ("A", "B")])
    kw = dict(segment=None, withdrawal="w", confrontation="c", coder="coder")
    res = at.detect(codes, rule="observer", **kw)
    assert not res.clients["included"].any() and res.episodes.empty
    rel = at.coder_agreement(res)  # the ICCs use every coded session; no labels to compare
    assert rel.icc.loc[rel.icc["measure"] == "withdrawal", "n_sessions"].iloc[0] == 6
    assert (rel.kappa["n"] == 0).all() and rel.kappa["kappa"].isna().all()
    res = at.detect(codes, rule="observer", min_sessions=1, **kw)
    assert len(res.episodes) == 6  # a rupture at session 1 repaired at session 2, per client and coder
    # kappa: both coders agree on all 6 sessions (3 with a rupture, 3 without): p_o = 1
    assert at.coder_agreement(res).kappa.set_index("label").loc["rupture", "kappa"] == pytest.approx(1.0)


def test_results_with_several_coders_are_not_pooled():
    res = two_coders()
    outcomes = pd.DataFrame({"client": [1], "y": [1.0]})
    with pytest.raises(InvalidInputError, match=r"course per coder \('A', 'B'\).*for_coder"):
        at.effects.outcome_association(res, outcomes, outcome="y")
    with pytest.raises(InvalidInputError, match="for_coder"):
        at.evaluate(res, at.simulate(2, rng=1))
    with pytest.raises(InvalidInputError, match=r"no coder 'Z'; the result has 'A', 'B'"):
        res.for_coder("Z")


def test_convergence_leaves_out_clients_a_rule_did_not_analyse_and_refuses_mixed_id_types():
    long_ = session_rows([0, 1, 0, 0], [0] * 4, client=1)
    short = session_rows([1, 1], [0, 0], client=2)  # 2 coded sessions: not analysed with min_sessions=3
    kw = dict(segment=None, withdrawal="w", confrontation="c")
    a = at.detect(pd.concat([long_, short]), rule="observer", **kw)
    b = at.detect(pd.concat([long_, short]), rule="observer", min_sessions=1, **kw)
    row = at.convergence({"a": a, "b": b}).pairs.iloc[0]
    assert row["n"] == 4 and row["n_only_b"] == 2  # client 2's sessions are only b's, not "no rupture" in a
    text = at.detect(pd.concat([long_, short]).assign(client=lambda d: d["client"].astype(str)), rule="observer",
                     min_sessions=1, **kw)
    with pytest.raises(InvalidInputError, match="client ids are of different types"):
        at.convergence({"a": a, "text": text})
    scores = pd.DataFrame({"client": "1", "session": range(1, 7), "score": [5.0, 5, 5, 3, 5, 5]})
    with pytest.raises(InvalidInputError, match="client ids are text in result and numbers in typed"):
        at.carry_type(at.detect(scores, rule="vshape", pooled_sd=0.5), a)


def test_a_significance_rating_needs_its_segment_codes():
    # segment 1: a withdrawal marker rated 2; segment 2: no code at all but a rating of 5 -> an input error,
    # not a session rated 5 (which observer_significant would count as a rupture)
    df = pd.DataFrame({"client": 1, "session": [1, 1, 2, 2, 3, 3], "segment": [1, 2] * 3,
                       "w": [1, NA, 0, 0, 0, 0], "c": [0, NA, 0, 0, 0, 0], "sig": [2, 5, NA, NA, NA, NA]})
    kw = dict(withdrawal="w", confrontation="c", significance="sig")
    with pytest.raises(InvalidInputError, match="rows whose code cells are all empty"):
        at.detect(df, rule="observer_significant", **kw)
    # a strategy is a code: its segment is coded (markers blank = none seen), and the session's peak is over
    # its coded segments: 2 -> below 3, no significant rupture
    df = df.assign(s=[0, 1, 0, 0, 0, 0], sig=[2, NA, NA, NA, NA, NA])
    res = at.detect(df, rule="observer_significant", resolution="s", **kw)
    assert res.sessions["segments"].tolist() == [2, 2, 2] and res.sessions["significance"].iloc[0] == 2
    assert res.episodes.empty
