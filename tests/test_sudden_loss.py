"""sudden_loss: hand-worked intervals, suddengains' own test cases, and a fixture
of verdicts computed by the R code of suddengains (see tests/data/README.md)."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference import sudden_loss_episodes, sudden_loss_verdicts

import alliance_ts as at
from alliance_ts.rules.sudden_loss import reliable_change_cutoff, t_critical

DATA = Path(__file__).parent / "data"


def run(sessions, scores, **kw):
    df = pd.DataFrame({"client": 1, "session": sessions, "score": scores})
    return at.detect(df, rule="sudden_loss", **kw)


def verdicts(res):
    s = res.sessions
    return {int(a): (None if pd.isna(b) else bool(b)) for a, b in zip(s["session"], s["sudden_loss"])}


def test_critical_values_match_the_published_table():
    assert round(t_critical(0.05, 4), 3) == 2.776
    assert round(t_critical(0.05, 3), 3) == 3.182
    assert round(t_critical(0.05, 2), 3) == 4.303


def test_full_windows_use_2776():
    # Interval 3 -> 4 of [30, 31, 29, 20, 21, 19]:
    # criterion 1: 29 - 20 = 9 >= 5; criterion 2: 9 >= 0.25 * 29 = 7.25;
    # pre = 30, 31, 29: mean 30, var (0 + 1 + 1)/2 = 1; post = 20, 21, 19: mean 20, var 1;
    # s_pooled = sqrt((2*1 + 2*1)/4) = 1; 30 - 20 = 10 > 2.776 * 1.
    res = run(range(1, 7), [30, 31, 29, 20, 21, 19], cutoff=5)
    # 1->2: one pre score (untestable); 2->3: 31-29 = 2 < 5; 4->5 and 5->6: rises /
    # one post score (untestable for 5->6).
    assert verdicts(res) == {1: None, 2: None, 3: False, 4: True, 5: False, 6: None}
    c = res.clients.iloc[0]
    assert (c["n_intervals"], c["n_tested"], c["n_untestable"], c["n_losses"]) == (5, 3, 2, 1)
    # episode: start = post session 4, pre = x3 = 29, never back to 29 -> unresolved,
    # trough = 19 at session 6, depth 29 - 19 = 10, magnitude 29 - 20 = 9.
    e = res.episodes.iloc[0]
    assert (e["start"], e["trough"], pd.isna(e["end"]), e["depth"], e["magnitude"]) == (4, 6, True, 10.0, 9.0)


def test_one_missing_pre_score_uses_3182_and_adjust_false_uses_2776():
    # Session 2 missed. Interval 3 -> 4: pre = sessions 1..3 = [30, 26] (mean 28, var 8),
    # post = sessions 4..6 = [23, 23.5, 22.5] (mean 23, var 0.25), df = 2 + 3 - 2 = 3.
    # s_pooled = sqrt((1*8 + 2*0.25)/3) = sqrt(2.8333) = 1.68325.
    # adjust=True: 3.18245 * 1.68325 = 5.357 and 28 - 23 = 5 is not > 5.357.
    # adjust=False: 2.776 * 1.68325 = 4.673 < 5: a sudden loss.
    # criteria 1-2: 26 - 23 = 3 >= cutoff 2 and >= 0.1 * 26 = 2.6.
    sessions, scores = [1, 3, 4, 5, 6], [30, 26, 23, 23.5, 22.5]
    assert math.isclose(math.sqrt((8 + 0.5) / 3), 1.68325, rel_tol=1e-5)
    res = run(sessions, scores, cutoff=2, pct=0.1)
    assert verdicts(res)[4] is False
    res = run(sessions, scores, cutoff=2, pct=0.1, adjust=False)
    assert verdicts(res)[4] is True
    # 1 -> 3 is not a consecutive pair (no bridging); 4 -> 5: pre = [26, 23], post =
    # [23.5, 22.5] (2 + 2) but criterion 1 fails (-0.5); 5 -> 6: one post score.
    c = res.clients.iloc[0]
    # span 1..6 = 5 intervals (1-2, 2-3, 3-4, 4-5, 5-6): tested 3-4 and 4-5.
    assert (c["n_intervals"], c["n_tested"], c["n_untestable"]) == (5, 2, 3)


def test_two_plus_two_scores_use_4303():
    # Sessions 1, 3, 4, 6: interval 3 -> 4 has pre = [30, 26] (mean 28, var 8) and post =
    # sessions 4..6 = [21, 20] (mean 20.5, var 0.5): df = 2, t = 4.30265.
    # s_pooled = sqrt((8 + 0.5)/2) = 2.06155; 4.30265 * 2.06155 = 8.870 > 28 - 20.5 = 7.5:
    # not a loss; with adjust=False 2.776 * 2.06155 = 5.723 < 7.5: a loss.
    # Criteria 1-2: 26 - 21 = 5 >= 2 and >= 0.1 * 26 (the default 0.25 * 26 = 6.5 would fail).
    sessions, scores = [1, 3, 4, 6], [30, 26, 21, 20]
    assert verdicts(run(sessions, scores, cutoff=2, pct=0.1))[4] is False
    assert verdicts(run(sessions, scores, cutoff=2, pct=0.1, adjust=False))[4] is True
    assert verdicts(run(sessions, scores, cutoff=2, adjust=False))[4] is False  # criterion 2
    # alpha = 0.01 with full windows: t(4, 0.005) = 4.604 against s_pooled 1 and a
    # difference of 10 (first test's series): still a loss; with a difference of 4 not.
    assert round(t_critical(0.01, 4), 3) == 4.604
    assert verdicts(run(range(1, 7), [30, 31, 29, 20, 21, 19], cutoff=5, alpha=0.01))[4] is True
    assert verdicts(run(range(1, 7), [30, 31, 29, 26, 27, 25], cutoff=2, pct=None, alpha=0.01))[4] is False


@pytest.mark.parametrize(
    "row, expected",
    # suddengains' tests/testthat/test-identify_sg.R, data set df1, cutoff 7:
    # expected sg_2to3, sg_3to4, sg_4to5 (post sessions 3, 4, 5).
    [
        ([28, 19, 23, 12, 13, np.nan], [False, False, None]),
        ([28, 19, 23, 11, 12, np.nan], [False, True, None]),
        ([28, 19, np.nan, 12, 13, np.nan], [None, None, None]),
        ([28, 19, 23, 12, 14, np.nan], [False, False, None]),
        ([28, 25, 28, 11, 12, np.nan], [False, True, None]),
        ([np.nan, 26, 28, np.nan, 12, 11], [None, None, None]),
        # data set df2
        ([35, 37, 23, 23, 24, 21], [True, False, False]),
        ([35, 37, 34, 24, 24, 21], [False, True, False]),
        ([35, 37, 34, 34, 24, 21], [False, False, True]),
        ([35, 37, 34, 37, 37, 37], [False, False, False]),
    ],
)
def test_suddengains_own_test_cases(row, expected):
    # Row 2 by hand: interval 3 -> 4 (23 -> 11): 12 >= 7; 12 >= 5.75; pre 28, 19, 23
    # (mean 23.33, var 20.33), post 11, 12 (mean 11.5, var 0.5), df 3:
    # s_pooled = sqrt((2*20.33 + 0.5)/3) = 3.704; 3.182 * 3.704 = 11.79 < 11.83.
    res = run(range(1, 7), row, cutoff=7, min_sessions=1)
    v = verdicts(res)
    assert [v.get(s) for s in (3, 4, 5)] == expected


def test_fixture_from_the_r_package():
    wide = pd.read_csv(DATA / "suddengains_input.csv")
    expected = pd.read_csv(DATA / "suddengains_verdicts.csv", dtype={"verdicts_from_session_3": str})
    long = at.to_long(wide, client="id")
    settings = {
        "default": dict(cutoff=5),
        "alpha01": dict(cutoff=5, alpha=0.01),
        "noadjust": dict(cutoff=5, adjust=False),
        "nopct": dict(cutoff=3, pct=None),
        "pct10": dict(cutoff=4, pct=0.10),
    }
    n_checked = 0
    for name, params in settings.items():
        res = at.detect(long, "sudden_loss", client="id", min_sessions=1, **params)
        # sessions 3..13 of every client; sessions after a client's last score are not
        # rows of the long table (to_long drops trailing empty cells): "." as in R
        grid = pd.MultiIndex.from_product([res.clients["client"], range(3, 14)], names=["client", "session"])
        s = res.sessions.set_index(["client", "session"])["sudden_loss"].reindex(grid).reset_index()
        code = s["sudden_loss"].map({True: "1", False: "0"}).astype(object).where(s["sudden_loss"].notna(), ".")
        mine = code.groupby(s["client"]).agg("".join)
        exp = expected[expected["setting"] == name].set_index("id")["verdicts_from_session_3"]
        pd.testing.assert_series_equal(mine, exp.reindex(mine.index), check_names=False)
        n_checked += len(mine) * 11
    assert n_checked == 5 * 300 * 11


def test_reliable_change_cutoff_and_estimated_sd():
    # 1.96 * sqrt(2) * 8 * sqrt(1 - 0.9) = 1.96 * 1.41421 * 8 * 0.316228 = 7.0123
    assert math.isclose(reliable_change_cutoff(8.0, 0.9), 1.96 * math.sqrt(2) * 8 * math.sqrt(0.1))
    df = pd.DataFrame(
        {"client": np.repeat([1, 2, 3], 4), "session": np.tile([1, 2, 3, 4], 3),
         "score": [40, 41, 40, 41, 44, 43, 44, 43, 48, 47, 48, 47]}
    )
    res = at.detect(df, rule="sudden_loss", reliability=0.9)
    # first scores 40, 44, 48: SD = 4 -> cutoff = 1.96 * sqrt(2) * 4 * sqrt(0.1) = 3.506
    assert res.params["sd"] == 4.0
    assert math.isclose(res.params["cutoff"], reliable_change_cutoff(4.0, 0.9))
    # the reported parameters reproduce the run
    again = at.detect(df, rule="sudden_loss", **{k: res.params[k] for k in ("cutoff", "reliability", "sd")})
    pd.testing.assert_frame_equal(again.clients, res.clients)


@pytest.mark.parametrize(
    "repair, expected",
    [
        # loss at session 4 (29 -> 20, pre window 30, 31, 29 / post 20, 21, 19);
        # full repair needs >= 29: never -> unresolved;
        ("full", [(4, 6, None)]),
        # reversal needs >= 20 + (29 - 20)/2 = 24.5: session 7 (25).
        ("reversal", [(4, 6, 7)]),
    ],
)
def test_repair_definitions(repair, expected):
    res = run(range(1, 9), [30, 31, 29, 20, 21, 19, 25, 26], cutoff=5, repair=repair)
    got = [(int(r.start), int(r.trough), None if pd.isna(r.end) else int(r.end)) for r in res.episodes.itertuples()]
    assert got == expected


def test_three_session_client_is_not_analysed():
    res = run([1, 2, 3], [30, 20, 20], cutoff=5)
    c = res.clients.iloc[0]
    assert not c["included"] and "no testable interval" in c["reason"]
    assert (c["n_intervals"], c["n_tested"], c["n_untestable"]) == (2, 0, 2)


def test_matches_reference_on_random_panels():
    rng = np.random.default_rng(3)
    rows = []
    for cid in range(150):
        n = int(rng.integers(3, 25))
        sess = np.cumsum(rng.choice([1, 1, 1, 1, 2], size=n))
        x = np.round(rng.normal(40, 3, n))
        if rng.random() < 0.6:
            j = int(rng.integers(1, n))
            x[j:] -= rng.integers(5, 15)
        x[rng.random(n) < 0.1] = np.nan
        rows += [(cid, int(s), float(v)) for s, v in zip(sess, x)]
    df = pd.DataFrame(rows, columns=["client", "session", "score"])
    for params in (dict(cutoff=4), dict(cutoff=3, pct=None, repair="reversal"), dict(cutoff=6, adjust=False)):
        res = at.detect(df, rule="sudden_loss", min_sessions=1, **params)
        vparams = {k: v for k, v in params.items() if k != "repair"}
        for cid, g in df.groupby("client"):
            ref = sudden_loss_verdicts(g["session"].tolist(), g["score"].tolist(), **vparams)
            s = res.sessions[res.sessions["client"] == cid]
            mine = {int(a): (None if pd.isna(b) else bool(b)) for a, b in zip(s["session"], s["sudden_loss"])}
            assert {k: v for k, v in mine.items() if k in ref} == {k: ref[k] for k in mine if k in ref}
            included = bool(res.clients.set_index("client").loc[cid, "included"])
            if included:
                ref_eps = sudden_loss_episodes(g["session"].tolist(), g["score"].tolist(), ref, params.get("repair", "full"))
                e = res.episodes[res.episodes["client"] == cid]
                got = [(int(r.start), int(r.trough), None if pd.isna(r.end) else int(r.end), r.pre) for r in e.itertuples()]
                assert got == ref_eps
