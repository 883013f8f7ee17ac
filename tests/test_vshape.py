"""Hand-worked cases for the drop-and-return family and its presets.

Each test writes out the arithmetic that gives the expected values.
"""

import math

import numpy as np
import pandas as pd
import pytest
from reference import vshape_reference

import alliance_ts as at


def one(scores, sessions=None, **kw):
    df = pd.DataFrame(
        {
            "client": "c1",
            "session": sessions if sessions is not None else range(1, len(scores) + 1),
            "score": scores,
        }
    )
    return at.detect(df, **kw)


def episodes(res):
    e = res.episodes
    return [
        (int(r.start), int(r.trough), None if pd.isna(r.end) else int(r.end), r.status)
        for r in e.itertuples()
    ]


def test_single_drop_previous_reference():
    # sigma = pooled_sd = 1 (sd="pooled"), theta = 2 * 1 = 2, return level = pre - 0.5 * 2.
    # Session 4 (38): the fall 51 -> 50 -> 38 is non-increasing over 2 sessions
    # (max_decline=3), so pre = 51 and 51 - 38 = 13 >= 2: onset at session 4.
    # Return level 51 - 1 = 50; session 3 (50) is not below it, so start = 4.
    # Session 5 scores 50 >= 50: repaired there.
    res = one([50, 51, 50, 38, 50, 51, 50, 52], rule="vshape", sd="pooled", pooled_sd=1.0)
    assert episodes(res) == [(4, 4, 5, "repaired")]
    ep = res.episodes.iloc[0]
    assert ep["pre"] == 51.0 and ep["depth"] == 13.0 and ep["trough_score"] == 38.0
    # phase: span 1..8 (7 sessions of span), start - first = 3: 3*3 = 9 >= 7 and 9 < 14 -> middle
    assert ep["phase"] == "middle"
    assert res.sessions["label"].tolist() == ["none", "none", "none", "rupture", "repair", "none", "none", "none"]
    assert res.clients.loc[0, "threshold"] == 2.0


def test_ceiling_blip_flagged_by_client_sd_but_not_by_stricter_of_two():
    # SRS at the ceiling with one 1-point blip: 7 x 40 and one 39.
    # mean = 319/8 = 39.875; SS = 7 * 0.125^2 + 0.875^2 = 0.875; var = 0.875/7 = 0.125
    # client SD = sqrt(0.125) = 0.35355.
    x = [40, 40, 40, 39, 40, 40, 40, 40]
    assert math.isclose(np.std(x, ddof=1), math.sqrt(0.125))
    # stiles2004: mean of the others at session 4 = (319 - 39)/7 = 40; 40 - 39 = 1 = 2.83 SD >= 2
    # return level 40 - 0.5 * 2 * 0.35355 = 39.646; session 5 (40) returns -> a "V".
    res = one(x, rule="stiles2004", scale="srs")
    assert episodes(res) == [(4, 4, 5, "repaired")]
    assert math.isclose(res.clients.loc[0, "sd"], math.sqrt(0.125))
    # gumz2012 with a sample SD of 2: sigma = max(0.354, 2) = 2, theta = 4 > 1: no rupture.
    res = one(x, rule="gumz2012", pooled_sd=2.0, scale="srs")
    assert episodes(res) == []
    assert res.clients.loc[0, "pattern"] == "no_rupture"
    assert res.clients.loc[0, "sd"] == 2.0


def test_constant_client_excluded_only_when_the_rule_needs_its_own_sd():
    res = one([40, 40, 40, 40], rule="stiles2004")
    row = res.clients.iloc[0]
    assert not row["included"] and "SD is 0" in row["reason"]
    assert pd.isna(row["pattern"]) and pd.isna(row["n_ruptures"])
    assert res.sessions["label"].tolist() == ["none"] * 4
    res = one([40, 40, 40, 40], rule="gumz2012", pooled_sd=1.5)
    assert res.clients.iloc[0]["included"] and res.clients.iloc[0]["pattern"] == "no_rupture"


def test_three_sessions_and_the_sqrt_n_property():
    # [50, 40, 50]: mean 46.667, SS = 3.333^2 + 6.667^2 + 3.333^2 = 66.667, var 33.333,
    # SD = 5.7735. Mean of the others at session 2 = 50; drop 10 = 1.732 SD (= sqrt(3)).
    res = one([50, 40, 50], rule="stiles2004")  # k = 2 > 1.732: nothing
    assert episodes(res) == []
    assert res.clients.loc[0, "included"]
    # strauss2006 (k = 1): 1.732 >= 1 -> rupture at session 2; return level
    # 50 - 0.5 * 1 * 5.7735 = 47.11; session 3 (50) returns within 1 session.
    res = one([50, 40, 50], rule="strauss2006")
    assert episodes(res) == [(2, 2, 3, "repaired")]
    # sqrt(n) >= 2 from n = 4 on (sqrt(4) = 2 exactly): a dip in 4 flat sessions is found
    res = one([50, 40, 50, 50], rule="stiles2004")
    assert episodes(res) == [(2, 2, 3, "repaired")]


def test_missed_sessions_are_skipped_and_labelled_inside_episodes():
    # Observed sessions 1,2,3,5,6,8 with scores 50,50,50,40,40,50; rows for the
    # missed sessions 4 and 7 have NaN scores.
    # sigma = 2, theta = 4, return level = pre - 2. Session 5 (40): the fall
    # 50 >= 50 >= 50 >= 40 spans 3 observed steps (max_decline = 3) -> pre = 50,
    # 50 - 40 = 10 >= 4: onset. Start = first session of the fall below 48 = 5.
    # Session 6 (40) not >= 48; session 8 (50) >= 48: repaired at 8.
    sessions = [1, 2, 3, 4, 5, 6, 7, 8]
    scores = [50, 50, 50, np.nan, 40, 40, np.nan, 50]
    res = one(scores, sessions, rule="vshape", sd="pooled", pooled_sd=2.0)
    assert episodes(res) == [(5, 5, 8, "repaired")]
    labels = dict(zip(res.sessions["session"], res.sessions["label"]))
    # session 4 lies between a 'none' and the start: outside; session 7 lies
    # between two sessions of episode 1: inside.
    assert labels == {1: "none", 2: "none", 3: "none", 4: "none", 5: "rupture", 6: "rupture", 7: "rupture", 8: "repair"}
    assert res.clients.loc[0, "n_sessions"] == 6
    # phase: span 1..8 = 7; start - first = 4; 3*4 = 12 >= 7, 12 < 14 -> middle
    assert res.episodes.loc[0, "phase"] == "middle"


def test_unresolved_episode_runs_to_the_end_and_trough_is_first_lowest():
    # theta = 4, return level 48. Onset at session 4 (50 -> 40); no later score
    # reaches 48, so unresolved; the lowest score 40 occurs at sessions 4 and 6:
    # the first one is the trough. Depth = 50 - 40 = 10.
    res = one([50, 50, 50, 40, 41, 40, 42, np.nan], rule="vshape", sd="pooled", pooled_sd=2.0)
    assert episodes(res) == [(4, 4, None, "unresolved")]
    assert res.episodes.loc[0, "depth"] == 10.0
    # the trailing missed session 8 is inside the unresolved episode
    assert res.sessions["label"].tolist()[3:] == ["unresolved"] * 5
    assert res.clients.loc[0, "pattern"] == "unresolved"


def test_two_episodes_mixed_pattern():
    # theta = 4. Episode 1: 50 -> 40 at session 2, back to 50 at 3.
    # Episode 2: 50, 50 -> 40 at session 5 (fall over 2 steps from session 3, pre 50),
    # start = first session below 48 = 5; 41 at session 6 never returns: unresolved.
    res = one([50, 40, 50, 50, 40, 41], rule="vshape", sd="pooled", pooled_sd=2.0)
    assert episodes(res) == [(2, 2, 3, "repaired"), (5, 5, None, "unresolved")]
    c = res.clients.iloc[0]
    assert (c["n_ruptures"], c["n_repaired"], c["n_unresolved"], c["pattern"]) == (2, 1, 1, "mixed")
    assert res.episodes["episode"].tolist() == [1, 2]
    assert res.sessions["episode"].fillna(0).tolist() == [0, 1, 1, 0, 2, 2]


@pytest.mark.parametrize(
    "window, expected",
    [
        # trough at session 2 (40); session 3 (42) is below the return level 48;
        # session 4 returns 2 sessions after the trough.
        (1, [(2, 2, None, "unresolved")]),
        (2, [(2, 2, 4, "repaired")]),
        (None, [(2, 2, 4, "repaired")]),
    ],
)
def test_repair_window_counts_sessions_from_the_trough(window, expected):
    res = one([50, 40, 42, 50], rule="vshape", sd="pooled", pooled_sd=2.0, repair_within=window)
    assert episodes(res) == expected


def test_mean_others_reference_with_a_two_session_decline():
    # x = 50, 50, 46, 40, 50, 50 (sum 286); sigma = 2, theta = 4, tol*theta = 2.
    # Session 3 (46): mean of the others = (286 - 46)/5 = 48; 48 - 46 = 2 < 4.
    # Session 4 (40): mean of the others = (286 - 40)/5 = 49.2; 49.2 - 40 = 9.2 >= 4,
    # and 46 >= 40 is a non-increasing step: onset. Return level 49.2 - 2 = 47.2.
    # The fall (max_decline = 2) starts after session 2; session 3 (46) < 47.2 so the
    # episode starts at session 3. Session 5 (50) >= 47.2: repaired.
    res = one([50, 50, 46, 40, 50, 50], rule="vshape", reference="mean_others", sd="pooled",
              pooled_sd=2.0, max_decline=2)
    assert episodes(res) == [(3, 4, 5, "repaired")]
    assert math.isclose(res.episodes.loc[0, "pre"], 49.2)
    assert math.isclose(res.episodes.loc[0, "depth"], 9.2)
    # with a one-session decline the start is the crossing session itself
    res = one([50, 50, 46, 40, 50, 50], rule="vshape", reference="mean_others", sd="pooled",
              pooled_sd=2.0, max_decline=1)
    assert episodes(res) == [(4, 4, 5, "repaired")]


def test_gumz_six_session_decline_and_stiles_single_session():
    # a slow fall of 2 points per session: 50, 48, 46, 44, 42, 40, then 50.
    x = [50, 48, 46, 44, 42, 40, 50]
    # client SD: mean 320/7 = 45.714, SS = 91.43, var 15.238, SD = 3.9036 > pooled 2,
    # so sigma = 3.9036 and theta = 7.807. The fall from 50 first reaches the threshold
    # at session 5: 50 - 42 = 8 >= 7.807 (4 steps <= 6). Return level
    # 50 - 0.5 * 7.807 = 46.096: the first session of the fall below it is session 3
    # (46 < 46.096) -> start 3. Trough 40 at session 6; 50 at session 7 repairs.
    res = one(x, rule="gumz2012", pooled_sd=2.0)
    assert math.isclose(res.clients.loc[0, "sd"], math.sqrt(320 / 21))  # 91.43/6 = 320/21
    assert episodes(res) == [(3, 6, 7, "repaired")]
    # stiles2004 needs one session 2 client-SDs below the mean of the others: the
    # lowest, 40, is 280/6 - 40 = 6.67 below the others' mean, < 2 * 3.9036 = 7.807.
    assert episodes(one(x, rule="stiles2004")) == []


def test_min_sd_floor_applies():
    # client SD of [40, 40, 39, 40, 40] = sqrt(0.8/4) = 0.447; with min_sd = 1 the
    # threshold is 2 and the 1-point blip is not a rupture.
    res = one([40, 40, 39, 40, 40], rule="vshape", sd="client", min_sd=1.0)
    assert episodes(res) == [] and res.clients.loc[0, "sd"] == 1.0


def test_pooled_sd_estimated_from_all_analysed_clients_and_reported():
    df = pd.DataFrame(
        {
            "client": ["a"] * 3 + ["b"] * 3 + ["c"] * 2,
            "session": [1, 2, 3, 1, 2, 3, 1, 2],
            "score": [1.0, 2.0, 3.0, 2.0, 2.0, 5.0, 9.0, 1.0],
        }
    )
    # a: var 1 (df 2); b: mean 3, var (1+1+4)/2 = 3 (df 2); c has 2 scores and is not
    # analysed (min_sessions = 3). Pooled = sqrt((2*1 + 2*3)/4) = sqrt(2).
    # (c's 9 among scores of 1 to 5 would look like a missing-data code: these are scores)
    res = at.detect(df, rule="vshape", check_codes=False)
    assert math.isclose(res.params["pooled_sd"], math.sqrt(2))
    assert res.clients.set_index("client").loc["c", "reason"] == "fewer than 3 observed scores (2)"


@pytest.mark.parametrize("rule", ["vshape", "stiles2004", "strauss2006", "gumz2012"])
def test_presets_match_reference_on_fixed_series(rule):
    rng = np.random.default_rng(7)
    spec = at.rules.get_rule(rule).parameters()
    spec["pooled_sd"] = 1.3
    for _ in range(200):
        n = int(rng.integers(3, 30))
        x = list(np.round(rng.normal(5, 1, n) * 4) / 4)
        if rng.random() < 0.5:
            j = int(rng.integers(1, n))
            x[j] -= float(rng.integers(2, 5))
        res = at.detect(x, rule=rule, pooled_sd=1.3)
        ref = vshape_reference(x, **spec)
        got = [
            (int(r.start) - 1, int(r.trough) - 1, None if pd.isna(r.end) else int(r.end) - 1, r.pre)
            for r in res.episodes.itertuples()
        ]
        if ref is None:
            assert not res.clients.loc[0, "included"]
        else:
            assert [g[:3] for g in got] == [r[:3] for r in ref]
            assert np.allclose([g[3] for g in got], [r[3] for r in ref])


@pytest.mark.parametrize("rule", ["vshape", "stiles2004", "strauss2006", "gumz2012", "recommended", "changepoint"])
def test_float_noise_around_a_constant_is_no_rupture(rule):
    # 40 stored with rounding errors of 1e-12 (an item mean computed in floating point):
    # these rules used to report "ruptures" of depth 1e-12. Differences below a trillionth
    # of the score (4e-11 here) are no difference, so every course is constant.
    x = 40 + np.array([0, 1e-12, -1e-12, 0, 2e-12, 0, -1e-12, 0])
    df = pd.DataFrame({"client": np.repeat([1, 2, 3], 8), "session": np.tile(np.arange(1, 9), 3),
                       "score": np.tile(x, 3)})
    res = at.detect(df, rule, scale="wai-sr")
    assert len(res.episodes) == 0
    assert not res.clients["included"].any()  # an SD of 0: the thresholds are in SD units
    # a real one-point dip in the same data is found (vshape with a pooled SD of 1 point)
    if rule == "vshape":
        dip = df.assign(score=np.where(df["session"] == 4, 37.0, df["score"]))
        assert len(at.detect(dip, rule, scale="wai-sr", sd="pooled", pooled_sd=1.0).episodes) == 3


@pytest.mark.parametrize("rule", ["stiles2004", "gumz2012", "changepoint", "recommended"])
def test_item_means_shifted_by_a_million_keep_their_episodes(rule):
    # item means (totals / 7) shifted by 1e6: rounding moves each score by about 1e-10, far
    # below a real 0.001 difference, which must still count (a tolerance of 1e-9 of the
    # scores, 1e-3 here, once swallowed it: depth 0.93651 against a threshold of 0.93750)
    s = np.array([55, 52, 47, 45, 52, 48, 53, 54, 50, 53]) / 7
    assert len(at.detect(s + 1e6, "stiles2004").episodes) == len(at.detect(s, "stiles2004").episodes) == 0
    sim = at.simulate(150, rng=4)
    df = sim.scores.assign(score=sim.scores["score"] / 7)
    cols = ["client", "start", "trough", "end", "status"]
    base = at.detect(df, rule).episodes[cols]
    assert len(base) > 10
    pd.testing.assert_frame_equal(base, at.detect(df.assign(score=df["score"] + 1e6), rule).episodes[cols])
