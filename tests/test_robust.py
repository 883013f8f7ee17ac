"""The library's robust rule and its recommended preset."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_ts as at
from alliance_ts.rules.robust import _critical, pooled_trimmed_scale, trimmed_scale


def test_trimmed_scale_by_hand():
    # 10 values, trim 0.2: drop the 2 smallest and 2 largest -> keep 6 values
    v = np.array([-30.0, -2, -1, 0, 0, 1, 1, 2, 3, 50])
    sd, df, loc = trimmed_scale(v, trim=0.2)
    kept = np.array([-1.0, 0, 0, 1, 1, 2])
    # normal truncated to the central 60%: q = 0.8416, var = 1 - 2 q phi(q) / 0.6
    q = stats.norm.isf(0.2)
    factor = 1 - 2 * q * stats.norm.pdf(q) / 0.6
    assert math.isclose(sd, math.sqrt(np.var(kept, ddof=1) / factor))
    assert df == 5 and math.isclose(loc, kept.mean())
    # the outliers do not matter
    sd2, _, _ = trimmed_scale(np.array([-3.0, -2, -1, 0, 0, 1, 1, 2, 3, 4]), trim=0.2)
    assert math.isclose(sd, sd2)
    # rows, with NaN padding; fewer than 4 values are not trimmed
    rows = np.array([[1.0, 2.0, 4.0, np.nan], [0.0, 0.0, 0.0, 0.0]])
    sd, df, _ = trimmed_scale(rows)
    assert math.isclose(sd[0], np.std([1, 2, 4], ddof=1)) and df[0] == 2
    assert sd[1] == 0.0


def test_pooled_trimmed_scale_matches_rowwise_and_is_unbiased_for_normal_noise():
    rng = np.random.default_rng(0)
    v = rng.normal(0, 3.0, 200_001)
    assert math.isclose(pooled_trimmed_scale(v), trimmed_scale(v)[0], rel_tol=1e-9)
    assert abs(pooled_trimmed_scale(v) - 3.0) < 0.03
    # rounded to whole points it stays within 3% of the SD, where the MAD is 13% low:
    # for SD 3.4 the MAD is 0.6745 * 3.4 = 2.29, rounded to 2, times 1.4826 = 2.97
    w = np.round(rng.normal(0, 3.4, 200_001))
    assert abs(pooled_trimmed_scale(w) / np.std(w) - 1) < 0.03
    mad = 1.4826 * np.median(np.abs(w - np.median(w)))
    assert mad == pytest.approx(2.9652) and mad / np.std(w) < 0.88


def test_critical_values():
    p = np.array([0.05 / 19, 0.05 / 19, 0.05 / 7])
    assert np.allclose(_critical(p, None), stats.norm.isf(p))
    df = np.array([40.0, 50.0, 40.0])
    assert np.allclose(_critical(p, df), stats.t.isf(p, df))


def test_hand_worked_v_with_fixed_noise():
    # pooled_noise fixed, noise="pooled", no dip statistic, no trend correction:
    # fall statistic = mean of the 3 previous scores - score.
    # 10 sessions: tests = 9, z = Phi^-1(1 - 0.05/9) = 2.539; noise SD 1 -> threshold 2.539.
    x = [5.0, 5.0, 5.0, 5.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    res = at.detect(x, rule="robust", noise="pooled", pooled_noise=(1.0, 1.0, 1.0, 1.0),
                    dip=False, center="none")
    z = stats.norm.isf(0.05 / 9)
    assert math.isclose(res.clients.loc[0, "threshold"], z)
    # session 5: fall from 5 (mean of sessions 2-4) to 1 = 4 >= 2.539; return level
    # 5 - 0.5 * min(2.539, 4) = 3.73; session 6 (5) repairs.
    e = res.episodes.iloc[0]
    assert (e["start"], e["trough"], e["end"], e["status"], e["pre"], e["depth"]) == (5, 5, 6, "repaired", 5.0, 4.0)
    # a fall of 2 < 2.539 is not a rupture
    y = [5.0, 5.0, 5.0, 5.0, 3.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    assert len(at.detect(y, rule="robust", noise="pooled", pooled_noise=(1.0,) * 4, dip=False, center="none").episodes) == 0


def test_dip_statistic_finds_a_v_the_fall_misses():
    # fall statistic at session 5: mean(5, 5, 5) - 2.6 = 2.4 < z = Phi^-1(1 - 0.05/18) = 2.773;
    # dip statistic: (5 + mean(5, 5)) / 2 - 2.6 = 2.4 with noise SD 0.8 -> 3.0 >= 2.773.
    x = [5.0, 5.0, 5.0, 5.0, 2.6, 5.0, 5.0, 5.0, 5.0, 5.0]
    pooled = (1.0, 1.0, 1.0, 0.8, 1.0)  # falls over 1-3 sessions, dip, lag-1 difference
    res = at.detect(x, rule="robust", noise="pooled", pooled_noise=pooled, center="none")
    assert math.isclose(res.clients.loc[0, "z"], stats.norm.isf(0.05 / 18))
    assert res.episodes[["start", "end"]].values.tolist() == [[5, 6]]
    res = at.detect(x, rule="robust", noise="pooled", pooled_noise=pooled[:3] + pooled[4:], center="none", dip=False)
    assert len(res.episodes) == 0


def test_false_alarms_are_close_to_alpha_on_rupture_free_courses():
    # 1,000 rupture-free simulated courses of 40-100 sessions (fixed seed): the share
    # with a false episode stays near alpha = 0.05, where gumz2012 flags most of them.
    sim = at.simulate(1000, rng=11, p_episode=0.0, n_sessions=(40, 100))
    fa = (at.detect(sim.scores, rule="recommended").clients["n_ruptures"] > 0).mean()
    assert fa <= 0.07
    fa_gumz = (at.detect(sim.scores, rule="gumz2012").clients["n_ruptures"] > 0).mean()
    assert fa_gumz > 0.5


def test_recommended_finds_clear_ruptures():
    sim = at.simulate(300, rng=5, kinds={"v": 1}, depth=(6, 8))
    m = at.evaluate(at.detect(sim.scores, rule="recommended"), sim)
    assert m.recall > 0.9 and m.precision > 0.9 and m.status_accuracy > 0.95


def test_parameter_checks():
    with pytest.raises(ValueError, match="parameter 'pooled_noise': must be None or 5 non-negative numbers"):
        at.detect([1.0, 2.0, 3.0], rule="robust", pooled_noise=(1.0, 2.0))
    with pytest.raises(ValueError, match="parameter 'noise': must be one of"):
        at.detect([1.0, 2.0, 3.0], rule="robust", noise="mad")


def test_constant_client_with_client_noise_is_excluded():
    res = at.detect([4.0] * 6, rule="robust", noise="client")
    assert not res.clients.loc[0, "included"]
    assert "noise estimate is 0" in res.clients.loc[0, "reason"]
