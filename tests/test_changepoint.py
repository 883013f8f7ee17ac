"""The changepoint rule: hand-worked episodes and the calibrated penalty."""

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at
from alliance_ts.rules.changepoint import CALIBRATION_GRID

# noise fixed to 1 and prior_df huge: every client's noise SD is the pooled 1.0,
# so min_drop=3 means a fall of 3 points and the return level is pre - 1.5.
FIXED = dict(rule="changepoint", noise=1.0, prior_df=1e12, penalty=5.0)


def episodes(res):
    return [(int(r.start), int(r.trough), None if pd.isna(r.end) else int(r.end), r.status) for r in res.episodes.itertuples()]


def test_one_session_dip():
    # One segment: mean 9.2, SSE = 9 * 0.8^2 + 7.2^2 = 57.6. Three segments (10 x4 | 2 |
    # 10 x5): SSE 0 + 2 change points x 5 = 10 < 57.6. Segment means 10 -> 2: a fall of
    # 8 >= 3 at session 5; the next segment's mean 10 >= 10 - 1.5: repaired at session 6.
    res = at.detect([10, 10, 10, 10, 2, 10, 10, 10, 10, 10], **FIXED)
    assert episodes(res) == [(5, 5, 6, "repaired")]
    assert res.episodes.loc[0, "pre"] == 10.0 and res.episodes.loc[0, "depth"] == 8.0
    assert res.clients.loc[0, "n_segments"] == 3 and res.clients.loc[0, "threshold"] == pytest.approx(3.0)


def test_sustained_drop_and_two_step_decline():
    res = at.detect([10] * 5 + [4] * 5, **FIXED)
    assert episodes(res) == [(6, 6, None, "unresolved")]
    # 10 -> 7 -> 4 with min_drop 2.5 (noise ~1 from the huge prior_df, so the threshold
    # is ~2.5): the first step (3 >= 2.5) opens the episode with pre 10; the last
    # segment's mean (4) is below 10 - 1.25, so it stays open; trough = first 4 (session 7)
    res = at.detect([10, 10, 10, 7, 7, 7, 4, 4, 4], **{**FIXED, "min_drop": 2.5})
    assert episodes(res) == [(4, 7, None, "unresolved")]
    # a fall of 2: one segment (SSE 6 x 0.444 + 3 x 1.778 = 8 < 2 change points x 5);
    # with penalty 1 it is its own segment, but 2 < 3 is no rupture
    res = at.detect([10, 10, 10, 8, 8, 8, 10, 10, 10], **FIXED)
    assert episodes(res) == [] and res.clients.loc[0, "n_segments"] == 1
    res = at.detect([10, 10, 10, 8, 8, 8, 10, 10, 10], **{**FIXED, "penalty": 1.0})
    assert episodes(res) == [] and res.clients.loc[0, "n_segments"] == 3


def test_missed_sessions_are_skipped():
    df = pd.DataFrame({"client": "x", "session": [1, 2, 3, 5, 6, 7, 9, 10],
                       "score": [10.0, 10, 10, 3, 3, np.nan, 10, 10]})
    res = at.detect(df, **FIXED)
    assert episodes(res) == [(5, 5, 9, "repaired")]
    labels = dict(zip(res.sessions["session"], res.sessions["label"]))
    assert labels[7] == "rupture" and labels[9] == "repair"


def test_calibrated_penalty_is_reproducible_and_reported():
    sim = at.simulate(200, rng=4)
    a = at.detect(sim.scores, rule="changepoint", penalty="calibrated")
    scale = a.params["penalty_scale"]
    assert scale in CALIBRATION_GRID
    b = at.detect(sim.scores, rule="changepoint", penalty="calibrated")
    pd.testing.assert_frame_equal(a.episodes, b.episodes)
    again = at.detect(sim.scores, rule="changepoint", penalty="calibrated",
                      penalty_scale=scale, noise=a.params["noise"])
    pd.testing.assert_frame_equal(a.episodes, again.episodes)


def test_stricter_fpr_never_lowers_the_penalty():
    sim = at.simulate(200, rng=5)
    loose = at.detect(sim.scores, rule="changepoint", penalty="calibrated", fpr=0.2).params["penalty_scale"]
    strict = at.detect(sim.scores, rule="changepoint", penalty="calibrated", fpr=0.01).params["penalty_scale"]
    assert strict >= loose


def test_parameter_checks():
    with pytest.raises(ValueError, match="parameter 'penalty': must be one of 'calibrated', 'bic', 'aic'"):
        at.detect([1.0, 2.0, 3.0], rule="changepoint", penalty="mbic")
    with pytest.raises(ValueError, match="parameter 'fpr'"):
        at.detect([1.0, 2.0, 3.0], rule="changepoint", fpr=0.0)


@pytest.mark.parametrize("offset", [1e5, 1e6, -1e6])
def test_large_scores_give_the_same_episodes(offset):
    # cumulative sums of uncentred scores used to lose the digits that matter: adding 1e5
    # changed the episodes and 1e6 removed them all. Scores are whole numbers, so x + 1e6 is
    # exact and every decision must be the same; only pre and trough_score move by the offset.
    sim = at.simulate(120, rng=9)
    base = at.detect(sim.scores, "changepoint")
    moved = at.detect(sim.scores.assign(score=sim.scores["score"] + offset), "changepoint")
    assert len(base.episodes) > 20
    cols = ["client", "episode", "start", "trough", "end", "status", "phase"]
    pd.testing.assert_frame_equal(base.episodes[cols], moved.episodes[cols])
    np.testing.assert_allclose(moved.episodes["pre"] - offset, base.episodes["pre"], atol=1e-6)
    assert base.params["noise"] == pytest.approx(moved.params["noise"], rel=1e-9)
