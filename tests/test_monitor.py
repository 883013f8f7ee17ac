"""Monitoring: hand-worked alerts, batch == live, the saved state, bad input, the caseload."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import alliance_ts as at
from alliance_ts.monitor import STATE_FORMAT


def course(scores, client=1, start=1):
    return pd.DataFrame({"client": client, "session": range(start, start + len(scores)), "score": scores})


# --------------------------------------------------------------------------
# hand-worked examples


def test_drop_by_hand():
    # s0 = 1, d0 = 4, k = 2.5, k_repair = 1, min_history = 2
    # s1 50: no history (n = 0)        -> no evidence; baseline n=1, mean 50, M2 0
    # s2 52: n = 1 < 2                 -> no evidence; n=2, mean 51, M2 = (52-50)*(52-51) = 2
    # s3 51: s^2 = (4*1 + 2)/(4+2-1) = 1.2, z = (51-51)/sqrt(1.2) = 0; n=3, mean 51, M2 2
    # s4 44: s^2 = (4 + 2)/(4+3-1) = 1, z = (44-51)/1 = -7 <= -2.5 -> alert opens (not added to the baseline)
    # s5 46: z = (46-51)/1 = -5 < -1   -> stays open
    # s6 51: z = 0 >= -1               -> repaired; added: n=4, mean 51
    res = at.monitor(course([50.0, 52, 51, 44, 46, 51]), rule="drop", s0=1.0, d0=4)
    s = res.sessions
    assert s["alert"].tolist() == [False, False, False, True, True, False]
    assert s["new"].tolist() == [False, False, False, True, False, False]
    assert s["repaired"].tolist() == [False] * 5 + [True]
    np.testing.assert_allclose(s["evidence"].to_numpy()[2:], [0.0, -7.0, -5.0, 0.0])
    assert s["evidence"].iloc[:2].isna().all()
    np.testing.assert_allclose(s["p"].iloc[3], stats.norm.cdf(-7.0))
    np.testing.assert_allclose(s["threshold"].iloc[2], 51 - 2.5 * math.sqrt(1.2))
    np.testing.assert_allclose(s["threshold"].iloc[3], 51 - 2.5 * 1.0)
    assert s["baseline"].tolist()[1:] == [50.0, 51.0, 51.0, 51.0, 51.0]
    assert s["alert_start"].tolist()[3:5] == [4, 4]
    assert s["repaired_at"].tolist()[3:5] == [6, 6]
    assert s["repaired_at"].iloc[[0, 1, 2, 5]].isna().all()
    ep = res.episodes
    assert ep[["client", "alert", "start", "alerted", "end", "status", "n_sessions"]].values.tolist() == [
        [1, 1, 4, 4, 6, "repaired", 2]]
    assert ep["evidence"].iloc[0] == -7.0


def test_drop_ceiling_uses_the_prior():
    # five sessions at 40: M2 = 0, s^2 = (4 * 1^2 + 0)/(4 + 5 - 1) = 0.5, s = 0.7071
    # 39: z = -1/0.7071 = -1.414 > -2.5 (no alert); 37: z = -3/0.7071 = -4.24 (alert)
    for last, alerted, z in ((39.0, False, -1 / math.sqrt(0.5)), (37.0, True, -3 / math.sqrt(0.5))):
        s = at.monitor(course([40.0] * 5 + [last]), rule="drop", s0=1.0, d0=4, scale="srs").sessions
        assert s["alert"].iloc[-1] == alerted
        np.testing.assert_allclose(s["evidence"].iloc[-1], z)


def test_drop_min_history_and_k_repair():
    # min_history 3: session 3 (n = 2) cannot alert even at z far below; s4 can
    # s1 10, s2 10 -> n 2 mean 10 M2 0; s3 0 -> not ready, enters the baseline: n 3, mean 20/3,
    # M2 = 0 + (0 - 10)*(0 - 20/3) = 200/3; s4: s^2 = (1*1 + 200/3)/(1 + 3 - 1) = 22.556, s = 4.749,
    # z = (-5 - 6.667)/4.749 = -2.457 > -2.5 (no alert)
    s = at.monitor(course([10.0, 10, 0, -5]), rule="drop", s0=1.0, d0=1, min_history=3).sessions
    assert not s["alert"].any()
    np.testing.assert_allclose(s["evidence"].iloc[3], (-5 - 20 / 3) / math.sqrt((1 + 200 / 3) / 3))
    # k_repair = 2.5 = k: the session must be above the alert threshold to repair
    # baseline 50 (n 3, M2 0), s = sqrt(4/(4+2)) = 0.8165: 47 -> z -3.67 opens; 48 -> z -2.45 >= -2.5 repairs
    s = at.monitor(course([50.0, 50, 50, 47, 48]), rule="drop", s0=1.0, d0=4, k_repair=2.5).sessions
    assert s["alert"].tolist() == [False, False, False, True, False]
    s = at.monitor(course([50.0, 50, 50, 47, 48]), rule="drop", s0=1.0, d0=4, k_repair=1.0).sessions
    assert s["alert"].tolist() == [False, False, False, True, True]  # z -2.45 < -1: still open


def test_srs36_by_hand():
    # alert while the total is <= 36; evidence = score - 36
    s = at.monitor(course([38.0, 35, 36, 37, 30]), rule="srs36").sessions
    assert s["alert"].tolist() == [False, True, True, False, True]
    assert s["new"].tolist() == [False, True, False, False, True]
    assert s["repaired"].tolist() == [False, False, False, True, False]
    assert s["evidence"].tolist() == [2.0, -1.0, 0.0, 1.0, -6.0]
    assert s["alert_start"].tolist()[1:3] == [2, 2] and s["alert_start"].iloc[4] == 5
    assert s["repaired_at"].tolist()[1:3] == [4, 4] and pd.isna(s["repaired_at"].iloc[4])
    assert s["threshold"].eq(36.0).all() and s["p"].isna().all()
    assert at.monitor(course([38.0, 35]), rule="cutoff", cutoff=35.5).sessions["alert"].tolist() == [False, True]


def test_srs36_checks_the_srs_range_by_default():
    with pytest.raises(at.InvalidInputError, match=r"outside the scale srs:total \[0, 40\]"):
        at.monitor(course([38.0, 41]), rule="srs36")


def test_missed_session_keeps_the_alert_and_changes_nothing():
    # a NaN row: alert stays open, no evidence, the baseline is not touched
    s = at.monitor(course([38.0, 35, np.nan, 37]), rule="srs36").sessions
    assert s["alert"].tolist() == [False, True, True, False]
    assert s["new"].tolist() == [False, True, False, False]
    assert np.isnan(s["evidence"].iloc[2])
    a = at.monitor(course([50.0, 52, np.nan, 51, 44]), rule="drop", s0=1.0, d0=4).sessions
    b = at.monitor(course([50.0, 52, 51, 44]), rule="drop", s0=1.0, d0=4).sessions
    np.testing.assert_array_equal(a["evidence"].to_numpy()[[0, 1, 3, 4]], b["evidence"].to_numpy())
    # gaps in session numbers are allowed and change nothing either
    c = at.monitor(pd.DataFrame({"client": 1, "session": [1, 2, 5, 9], "score": [50.0, 52, 51, 44]}), rule="drop",
                   s0=1.0, d0=4).sessions
    np.testing.assert_array_equal(c["evidence"].to_numpy(), b["evidence"].to_numpy())


def test_ids_as_given_and_row_order():
    df = pd.concat([course([38.0, 35, 30], client="007"), course([39.0, 40, 34], client="7")])
    res = at.monitor(df.sample(frac=1, random_state=3), rule="srs36").sessions
    assert res["client"].tolist() == ["007"] * 3 + ["7"] * 3
    ints = at.monitor(pd.concat([course([35.0], client=12), course([37.0], client=3)]), rule="srs36").sessions
    assert ints["client"].tolist() == [3, 12] and ints["client"].dtype.kind == "i"


def test_lookback_rule_on_prefixes():
    # vshape with pooled_sd 1: the prefix 50 51 50 40 ends in an open (unresolved) episode from session 4;
    # with the next session back at 50 the episode is repaired, so the alert closes there
    df = course([50.0, 51, 50, 40, 50, 50])
    res = at.monitor(df, rule="vshape", pooled_sd=1.0)
    s = res.sessions
    assert s["alert"].tolist() == [False, False, False, True, False, False]
    assert s["new"].tolist() == [False, False, False, True, False, False]
    assert s["repaired"].tolist() == [False, False, False, False, True, False]
    assert s["repaired_at"].iloc[3] == 5
    ep = at.detect(df.iloc[:4], rule="vshape", pooled_sd=1.0).episodes.iloc[0]
    assert s["alert_start"].iloc[3] == ep["start"] and s["evidence"].iloc[3] == -ep["depth"]
    assert res.info["mode"] == "prefix"
    # the same alerts as running detect on each prefix by hand
    for t in range(1, 7):
        eps = at.detect(df.iloc[:t], rule="vshape", pooled_sd=1.0).episodes if t >= 3 else pd.DataFrame()
        open_now = len(eps) > 0 and bool(eps["end"].isna().any())
        assert s["alert"].iloc[t - 1] == open_now


def test_lookback_rule_cannot_run_live():
    with pytest.raises(at.InvalidInputError, match="look-back rule.*at.monitor"):
        at.Monitor(rule="recommended")
    with pytest.raises(at.InvalidInputError, match="unknown monitoring rule 'nope'"):
        at.Monitor(rule="nope")
    with pytest.raises(at.InvalidInputError, match="unknown monitoring rule"):
        at.monitor(course([1.0, 2, 3]), rule="psq")


def test_parameter_problems_listed_once():
    with pytest.raises(at.InvalidInputError) as err:
        at.Monitor("drop", k=-1, min_history=0.5, s0=1.0, scale="nope")
    text = str(err.value)
    assert "4 problems" in text
    for what in ("'k'", "'min_history'", "s0', 'd0'", "unknown instrument"):
        assert what in text
    with pytest.raises(at.InvalidInputError, match="k_repair.*at most k"):
        at.Monitor("drop", k=1.0, k_repair=2.0)
    with pytest.raises(at.InvalidInputError, match="unknown parameter.*'kk'"):
        at.Monitor("srs36", kk=1)
    with pytest.raises(at.InvalidInputError, match="cutoff rule needs a cut-off"):
        at.Monitor("cutoff").update(course([30.0]))
    with pytest.raises(at.InvalidInputError, match="needs its prior noise SD"):
        at.Monitor("drop").update(course([30.0]))


def test_list_monitor_rules():
    t = at.list_monitor_rules().set_index("name")
    assert t.loc[["drop", "cutoff", "srs36"], "mode"].tolist() == ["online"] * 3
    assert t.loc["srs36", "parameters"].startswith("cutoff=36.0")
    assert "unverified" in t.loc["srs36", "provenance"]
    assert {"recommended", "stiles2004", "gumz2012"} <= set(t.index[t["mode"] == "prefix"])
    assert "psq" not in t.index


# --------------------------------------------------------------------------
# the prior


def test_fit_prior_recovers_known_noise():
    # 400 clients x 12 sessions of N(30, 2^2): s0 close to 2 and a large d0 (no spread of true SDs)
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"client": np.repeat(np.arange(400), 12), "session": np.tile(np.arange(1, 13), 400),
                       "score": rng.normal(30, 2, 4800)})
    prior = at.fit_prior(df)
    assert abs(prior.s0 - 2.0) < 0.05 and prior.d0 > 50
    # true variances from a scaled inverse chi-square with d0 = 6, s0 = 3: recovered roughly
    sig2 = 6 * 9 / rng.chisquare(6, 2000)
    df = pd.DataFrame({"client": np.repeat(np.arange(2000), 10), "session": np.tile(np.arange(1, 11), 2000),
                       "score": rng.normal(0, np.repeat(np.sqrt(sig2), 10))})
    prior = at.fit_prior(df)
    assert 4 < prior.d0 < 9 and 2.6 < prior.s0 < 3.4


def test_fit_prior_needs_varying_clients():
    with pytest.raises(at.InvalidInputError, match="2 client\\(s\\) with two or more scores that vary"):
        at.fit_prior(pd.concat([course([1.0, 2], client=1), course([3.0, 5], client=2), course([4.0, 4], client=3)]))


def test_prior_choices_in_batch():
    sim = at.simulate(60, rng=3, scale="srs", baseline=0.92)
    ref = at.simulate(60, rng=4, scale="srs", baseline=0.92).scores
    own = at.monitor(sim.scores, rule="drop", scale="srs")
    assert "look-ahead" in own.info["prior"]["source"]
    fitted = at.fit_prior(sim.scores, scale="srs")
    assert own.params["s0"] == fitted.s0 and own.params["d0"] == fitted.d0
    by_ref = at.monitor(sim.scores, rule="drop", scale="srs", prior=ref)
    assert by_ref.info["prior"]["source"] == "reference table"
    assert by_ref.params["s0"] == at.fit_prior(ref, scale="srs").s0
    live = at.Monitor("drop", scale="srs").fit(ref)
    pd.testing.assert_frame_equal(live.update(sim.scores).sessions, by_ref.sessions)
    with pytest.raises(at.InvalidInputError, match="either prior= or s0= and d0="):
        at.monitor(sim.scores, rule="drop", prior=ref, s0=1.0, d0=2.0)
    with pytest.raises(at.InvalidInputError, match="only the drop rule has a prior"):
        at.monitor(sim.scores, rule="srs36", prior=ref)
    with pytest.raises(at.InvalidInputError, match="fit the prior before the first update"):
        live.fit(ref)


# --------------------------------------------------------------------------
# batch == live


@st.composite
def courses_and_batches(draw):
    """A table of 1-4 clients with gapped sessions and NaN scores, and batch numbers rising with session."""
    n_clients = draw(st.integers(1, 4))
    text_ids = draw(st.booleans())
    rows, batch = [], []
    for c in range(n_clients):
        n = draw(st.integers(1, 9))
        sessions = sorted(draw(st.sets(st.integers(1, 30), min_size=n, max_size=n)))
        cuts = sorted(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
        for s, b in zip(sessions, cuts):
            score = draw(st.one_of(st.integers(20, 40).map(float), st.just(np.nan)))
            rows.append({"client": f"0{c}" if text_ids else c, "session": s, "score": score})
            batch.append(b)
    return pd.DataFrame(rows), np.array(batch)


@pytest.mark.parametrize("rule, params", [("drop", {"s0": 1.5, "d0": 3.0}), ("srs36", {}),
                                          ("drop", {"s0": 2.0, "d0": 10.0, "k": 1.5, "min_history": 1})])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=courses_and_batches(), seed=st.integers(0, 2**16), via_file=st.booleans())
def test_batch_equals_live(tmp_path_factory, rule, params, data, seed, via_file):
    df, batch = data
    whole = at.monitor(df, rule=rule, scale="srs", **params)
    live = at.Monitor(rule, scale="srs", **params)
    parts = []
    path = tmp_path_factory.mktemp("state") / "state.json"
    for b in sorted(set(batch)):
        part = df[batch == b].sample(frac=1, random_state=seed)  # any row order within a batch
        parts.append(live.update(part))
        if via_file:  # saving and loading between batches changes nothing
            live.save(path)
            live = at.Monitor.load(path)
    joined = at.Alerts.concat(parts)
    pd.testing.assert_frame_equal(joined.sessions, whole.sessions)
    assert joined.rule == whole.rule and joined.params == whole.params
    # the live caseload is the batch one: threshold and baseline of the latest session included
    pd.testing.assert_frame_equal(live.caseload(), whole.caseload())


# --------------------------------------------------------------------------
# live updates: errors leave the state unchanged


def _state(mon):
    return {k: v.copy() for k, v in mon._arrays.items()}, list(mon.clients)


def test_session_sent_twice_or_out_of_order():
    mon = at.Monitor("srs36")
    mon.update(pd.DataFrame({"client": ["a", "b"], "session": [3, 1], "score": [38.0, 39.0]}))
    before = _state(mon)
    bad = pd.DataFrame({"client": ["a", "b", "c"], "session": [2, 1, 1], "score": [30.0, 30.0, 30.0]},
                       index=[10, 11, 12])
    with pytest.raises(at.InvalidInputError) as err:
        mon.update(bad)
    text = str(err.value)
    assert "2 rows with a session at or before the client's last session already monitored" in text
    assert "row 10 (client 'a', session 2; last session monitored 3)" in text
    assert "row 11 (client 'b', session 1; last session monitored 1)" in text
    after = _state(mon)
    assert after[1] == before[1] and all(np.array_equal(before[0][k], after[0][k], equal_nan=True)
                                         for k in before[0])
    # duplicates in one batch, scores out of scale and text scores: one error listing them all
    worse = pd.DataFrame({"client": ["c", "c", "d", "e"], "session": [1, 1, 1, 1], "score": [30.0, 31.0, 41.0, "x"]})
    with pytest.raises(at.InvalidInputError) as err:
        mon.update(worse)
    assert len(err.value.problems) == 3
    assert mon.n_clients == 2


def test_ids_that_print_alike_across_batches():
    mon = at.Monitor("srs36")
    mon.update(pd.DataFrame({"client": [7], "session": [1], "score": [38.0]}))
    with pytest.raises(at.InvalidInputError, match="written the other way.*: '7' here, 7 in the state"):
        mon.update(pd.DataFrame({"client": ["7"], "session": [2], "score": [38.0]}))


HINT = ("ids must be written the same way in every batch: read the file with the ids as text (CSV: ids are read "
        "as text), or convert them")


def test_ids_written_as_numbers_after_text():
    # week 1 from a CSV file (ids as text), week 2 from an Excel file (the same ids as numbers): 7 is '007'
    mon = at.Monitor("srs36")
    mon.update(pd.DataFrame({"client": ["007", "012", "3"], "session": [1, 1, 1], "score": [38.0, 35, 39]}))
    before = _state(mon)
    excel = pd.DataFrame({"client": np.array([7, 12, 3, 44], dtype=np.int64), "session": [2, 2, 2, 1],
                          "score": [30.0, 37, 39, 20]})
    with pytest.raises(at.InvalidInputError) as err:
        mon.update(excel)
    text = str(err.value)
    assert ("3 client id(s) of this batch match a client already monitored written the other way" in text)
    assert "3 here, '3' in the state; 7 here, '007' in the state; 12 here, '012' in the state" in text
    assert "1 other client id(s) of this batch are numbers where the clients already monitored have text ids " \
           "(e.g. 44)" in text
    assert "nothing was updated" in text and HINT in text and "np." not in text
    after = _state(mon)
    assert after[1] == before[1] == ["007", "012", "3"]
    assert all(np.array_equal(before[0][k], after[0][k], equal_nan=True) for k in before[0])
    # a number id that matches no text id is still refused: numbers and text are not mixed across batches
    with pytest.raises(at.InvalidInputError, match=r"are numbers where the clients already monitored have text ids "
                                                   r"\(e\.g\. 44\)"):
        mon.update(pd.DataFrame({"client": [44], "session": [1], "score": [30.0]}))
    # the reverse: number ids in the state, text in the batch ('07' reads as 7)
    nums = at.Monitor("srs36")
    nums.update(pd.DataFrame({"client": [7, 8], "session": [1, 1], "score": [38.0, 38]}))
    with pytest.raises(at.InvalidInputError, match="'07' here, 7 in the state.*'x'"):
        nums.update(pd.DataFrame({"client": ["07", "x"], "session": [2, 1], "score": [30.0, 30]}))
    assert nums.n_clients == 2
    # two texts are two clients: '7' beside '007' is a new client, as before
    out = mon.update(pd.DataFrame({"client": ["007", "7"], "session": [2, 1], "score": [30.0, 39]}))
    assert out.sessions["client"].tolist() == ["007", "7"] and mon.n_clients == 4
    # a state mixing numbers and text (one batch with both): only the ids written the other way are refused
    mixed = at.Monitor("srs36")
    mixed.update(pd.DataFrame({"client": [5, "b"], "session": [1, 1], "score": [38.0, 38]}))
    mixed.update(pd.DataFrame({"client": [6, "c"], "session": [1, 1], "score": [38.0, 38]}))
    with pytest.raises(at.InvalidInputError, match="'005' here, 5 in the state"):
        mixed.update(pd.DataFrame({"client": ["005"], "session": [2], "score": [38.0]}))


def test_dates_as_sessions_are_refused(tmp_path):
    # weekly batches with dates as sessions: ranked within each batch, the second week would restart at 1
    dated = pd.DataFrame({"client": 1, "session": pd.date_range("2024-01-01", periods=6, freq="7D"),
                          "score": [38.0, 39, 38, 30, 39, 38]})
    expected = "monitoring numbers sessions: give each client's session number (1, 2, 3, ...)"
    mon = at.Monitor("srs36")
    for batch in (dated.iloc[:3], dated.assign(session=dated["session"].dt.date),
                  dated.assign(session=dated["session"].dt.strftime("%Y-%m-%d")),
                  dated.assign(session=dated["session"].dt.to_period("D"))):
        with pytest.raises(at.InvalidInputError) as err:
            mon.update(batch)
        text = str(err.value)
        assert expected in text and "row 0: " in text and "date-format" not in text and "--" not in text
    assert mon.n_clients == 0
    for rule in ("srs36", "recommended", "drop"):
        with pytest.raises(at.InvalidInputError) as err:
            at.monitor(dated, rule=rule)
        assert expected in str(err.value) and "6 date(s)" in str(err.value)
    # session numbers that are text are not dates
    assert at.Monitor("srs36").update(dated.assign(session=["1", "2", "3", "4", "5", "6"])).sessions[
        "alert"].tolist() == [False, False, False, True, False, False]


def test_empty_batch():
    mon = at.Monitor("srs36")
    out = mon.update(pd.DataFrame({"client": pd.Series([], dtype=object), "session": [], "score": []}))
    assert out.sessions.empty and list(out.sessions.columns) == list(at.monitor(course([1.0]), rule="srs36").sessions.columns)


# --------------------------------------------------------------------------
# the saved state


@pytest.mark.parametrize("ext", ["json", "parquet"])
@pytest.mark.parametrize("ids", [[1, 2, 3], ["007", "7", "x"], [5, "5a", "b"]])
def test_state_round_trip(tmp_path, ext, ids):
    mon = at.Monitor("drop", s0=1.5, d0=3.0, scale="srs")
    first = pd.DataFrame({"client": ids * 3, "session": np.repeat([1, 2, 3], 3), "score": [38.0, 35, 40, 39, 36,
                                                                                            np.nan, 30, 37, 40]})
    mon.update(first)
    path = mon.save(tmp_path / f"state.{ext}")
    loaded = at.Monitor.load(path, rule="drop")
    assert list(loaded.clients) == ids and [type(v) for v in loaded.clients] == [type(v) for v in ids]
    assert loaded.params == mon.params and loaded.rule == "drop"
    for k, v in mon._arrays.items():
        np.testing.assert_array_equal(loaded._arrays[k], v)
    nxt = pd.DataFrame({"client": ids, "session": 4, "score": [20.0, 39, 38]})
    pd.testing.assert_frame_equal(loaded.update(nxt).sessions, mon.update(nxt).sessions)


def test_state_of_another_rule_or_version_or_damaged(tmp_path):
    mon = at.Monitor("drop", s0=1.5, d0=3.0)
    mon.update(course([38.0, 35, 30]))
    path = mon.save(tmp_path / "state.json")
    with pytest.raises(at.InvalidInputError, match="written by rule 'drop', not 'srs36'"):
        at.Monitor.load(path, rule="srs36")
    body = json.loads(path.read_text())
    body["format_version"] = STATE_FORMAT + 1
    (tmp_path / "v.json").write_text(json.dumps(body))
    with pytest.raises(at.InvalidInputError, match=f"state format {STATE_FORMAT + 1}.*reads format {STATE_FORMAT}"):
        at.Monitor.load(tmp_path / "v.json")
    body = json.loads(path.read_text())
    body["arrays"]["rule_mean"][0] = 1.0  # a changed number
    (tmp_path / "c.json").write_text(json.dumps(body))
    with pytest.raises(at.InvalidInputError, match="checksum does not match"):
        at.Monitor.load(tmp_path / "c.json")
    body = json.loads(path.read_text())
    body["arrays"]["open"] = [1]
    (tmp_path / "t.json").write_text(json.dumps(body))
    with pytest.raises(at.InvalidInputError, match="array 'open' holds wrong values"):
        at.Monitor.load(tmp_path / "t.json")
    (tmp_path / "cut.json").write_text(path.read_text()[:200])
    with pytest.raises(at.InvalidInputError, match="cannot be read as a monitoring state"):
        at.Monitor.load(tmp_path / "cut.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(at.InvalidInputError, match="not a monitoring state"):
        at.Monitor.load(tmp_path / "other.json")
    mon.save(tmp_path / "state.parquet")
    data = (tmp_path / "state.parquet").read_bytes()
    (tmp_path / "bad.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(at.InvalidInputError, match="cannot be read as a monitoring state"):
        at.Monitor.load(tmp_path / "bad.parquet")
    with pytest.raises(at.InvalidInputError, match="no such file"):
        at.Monitor.load(tmp_path / "missing.json")
    with pytest.raises(at.InvalidInputError, match=r"ends in \.json or \.parquet"):
        mon.save(tmp_path / "state.txt")


@pytest.mark.parametrize("edit", ["params.cutoff", "scale.high", "rule", "prior", "format", "alliance_ts"])
def test_state_edited_by_hand_is_refused(tmp_path, edit):
    # every entry that changes results is under the checksum: a hand-edited state is a changed file
    mon = at.Monitor("srs36")
    mon.update(course([38.0, 35]))
    path = mon.save(tmp_path / "state.json")
    body = json.loads(path.read_text())
    assert body["params"] == {"cutoff": 36.0} and body["scale"]["high"] == 40.0 and body["rule"] == "srs36"
    if edit == "params.cutoff":
        body["params"]["cutoff"] = 30.0  # every alert would mean another cut-off
    elif edit == "scale.high":
        body["scale"]["high"] = 50.0
    elif edit == "rule":
        body["rule"] = "cutoff"  # a valid rule with the same parameters
    elif edit == "prior":
        body["prior"] = {"source": "made up"}
    elif edit == "format":
        body["format"] = "alliance_ts.monitor-state "
    else:
        body["alliance_ts"] = "0.0.1"  # the library version is a record only: not checked
    (tmp_path / "edited.json").write_text(json.dumps(body))
    if edit == "alliance_ts":
        assert at.Monitor.load(tmp_path / "edited.json").params == mon.params
        return
    with pytest.raises(at.InvalidInputError, match="checksum does not match|not a monitoring state"):
        at.Monitor.load(tmp_path / "edited.json")
    # the Parquet state: the same header, in the file's metadata
    import pyarrow.parquet as pq

    mon.save(tmp_path / "state.parquet")
    table = pq.read_table(tmp_path / "state.parquet")
    meta = json.loads(table.schema.metadata[b"alliance_ts.monitor-state"])
    meta.update({k: body[k] for k in ("params", "scale", "rule", "prior", "format")})
    pq.write_table(table.replace_schema_metadata({"alliance_ts.monitor-state": json.dumps(meta)}),
                   tmp_path / "edited.parquet")
    with pytest.raises(at.InvalidInputError, match="checksum does not match|not a monitoring state"):
        at.Monitor.load(tmp_path / "edited.parquet")


def test_messages_show_plain_values(tmp_path):
    with pytest.raises(at.InvalidInputError, match=r"must be at most k \(1\), got 2 \(a session") as err:
        at.Monitor("drop", k=1.0, k_repair=np.float64(2.0))
    assert "np." not in str(err.value)
    with pytest.raises(at.InvalidInputError, match=r"unknown monitoring rule 'nope';") as err:
        at.Monitor(np.str_("nope"))
    with pytest.raises(at.InvalidInputError, match=r"a Prior, got 2$") as err:
        at.monitor(course([38.0]), rule="drop", prior=np.int64(2))
    mon = at.Monitor("srs36")
    mon.update(course([38.0, 35]))
    path = mon.save(tmp_path / "state.json")
    with pytest.raises(at.InvalidInputError, match="written by rule 'srs36', not 'drop':") as err:
        at.Monitor.load(path, rule=np.str_("drop"))
    bad = course([30.0], start=2).set_index(pd.Index(np.array([4], dtype=np.int64)))
    with pytest.raises(at.InvalidInputError, match=r"row 4 \(client 1, session 2; last session monitored 2\)") as err:
        mon.update(bad)
    assert "np." not in str(err.value)


def test_state_memory_does_not_grow_with_sessions():
    mon = at.Monitor("drop", s0=1.0, d0=4)
    sizes = []
    for s in range(1, 31):
        mon.update(pd.DataFrame({"client": np.arange(50), "session": s, "score": 30.0 + (s % 3)}))
        sizes.append(sum(v.nbytes for v in mon._arrays.values()))
    assert len(set(sizes)) == 1 and sizes[0] < 50 * 200


# --------------------------------------------------------------------------
# the caseload


def test_caseload_sorted_by_evidence():
    # srs36 evidence = last score - 36: client 2 (-10) before client 1 (-3); client 3 was repaired at session 3
    df = pd.concat([course([38.0, 35, 33], client=1), course([30.0, 28, 26], client=2),
                    course([30.0, 39, 40], client=3), course([39.0, 40, 40], client=4)])
    res = at.monitor(df, rule="srs36")
    cl = res.caseload()
    assert cl["client"].tolist() == [2, 1]
    assert cl["evidence"].tolist() == [-10.0, -3.0]
    assert cl["alert_start"].tolist() == [1, 2] and cl["n_open"].tolist() == [3, 2]
    assert at.caseload(res, clients=[1, 3])["client"].tolist() == [1]
    mon = at.Monitor("srs36")
    mon.update(df)
    live = mon.caseload()
    assert live[["client", "session", "score", "evidence", "alert_start", "n_open"]].values.tolist() == [
        [2, 3, 26.0, -10.0, 1, 3], [1, 3, 33.0, -3.0, 2, 2]]
    # srs36: the threshold is the cut-off 36, and there is no baseline
    assert live["threshold"].tolist() == [36.0, 36.0] and live["baseline"].isna().all()
    pd.testing.assert_frame_equal(live, cl)
    # repaired clients and alerts repaired later are not in it
    assert res.episodes.loc[res.episodes["client"] == 3, "status"].tolist() == ["repaired"]


def test_live_caseload_threshold_and_baseline_by_hand():
    # drop, s0 = 1, d0 = 4, k = 2.5 (see test_drop_by_hand): after 50 52 51 the baseline is n 3, mean 51, M2 2;
    # s4 44: s^2 = (4*1 + 2)/(4 + 3 - 1) = 1, threshold = 51 - 2.5*1 = 48.5, z = -7: the alert opens;
    # s5 46: the baseline is unchanged (alert sessions stay out): threshold 48.5, baseline 51, z = -5
    mon = at.Monitor("drop", s0=1.0, d0=4)
    mon.update(course([50.0, 52, 51]))
    mon.update(course([44.0, 46], start=4))
    cl = mon.caseload()
    assert cl[["client", "session", "score", "evidence", "alert_start", "n_open", "threshold", "baseline"]
              ].values.tolist() == [[1, 5, 46.0, -5.0, 4, 2, 48.5, 51.0]]
    pd.testing.assert_frame_equal(cl, at.monitor(course([50.0, 52, 51, 44, 46]), rule="drop", s0=1.0,
                                                 d0=4).caseload())
    # a missed latest session: the alert stays open, and the row is that session's (no score, no evidence)
    mon.update(course([np.nan], start=6))
    cl = mon.caseload()
    assert cl[["session", "alert_start", "n_open"]].values.tolist() == [[6, 4, 3]]
    assert cl[["score", "evidence", "p", "threshold", "baseline"]].isna().all(axis=None)
    pd.testing.assert_frame_equal(cl, at.monitor(course([50.0, 52, 51, 44, 46, np.nan]), rule="drop", s0=1.0,
                                                 d0=4).caseload())


def test_fit_prior_ignores_id_spelling_and_order():
    sim = at.simulate(50, rng=8, scale="srs", baseline=0.92).scores
    text = sim.assign(client=sim["client"].map(lambda c: f"c{c:03d}x" if c % 2 else str(c)))
    a, b = at.fit_prior(sim), at.fit_prior(text.sample(frac=1, random_state=1))
    assert (a.s0, a.d0, a.n_clients) == (b.s0, b.d0, b.n_clients)


def test_caseload_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.concat([course([38.0, 35, 33], client="007"), course([30.0, 28, 26], client=2),
                    course([39.0, 40, 40], client=4)])
    axes = at.plot.caseload(at.monitor(df, rule="srs36"), ncols=3)
    assert axes.shape == (1, 2)  # two flagged clients, strongest first
    assert [ax.get_title() for ax in axes.flat] == ["client 2: evidence -10, open since session 1",
                                                   "client 007: evidence -3, open since session 2"]
    plt.close("all")
    empty = at.plot.caseload(at.monitor(course([39.0, 40]), rule="srs36"))
    assert empty.shape == (1, 1) and not empty[0, 0].axison
    plt.close("all")
    with pytest.raises(at.InvalidInputError, match="parameter 'n'"):
        at.plot.caseload(at.monitor(df, rule="srs36"), n=0)
