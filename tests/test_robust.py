"""The library's robust rule and its recommended preset."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_ts as at
from alliance_ts.noise import autocorrelation
from alliance_ts.rules.robust import _critical, dip_ratio, fall_ratio


def test_critical_values():
    p = np.array([0.05 / 19, 0.05 / 19, 0.05 / 7])
    assert np.allclose(_critical(p, None), stats.norm.isf(p))
    df = np.array([40.0, 50.0, 40.0])
    assert np.allclose(_critical(p, df), stats.t.isf(p, df))


def test_noise_model_ratios_match_simulated_ar1_noise():
    # For AR(1) noise the SD of each statistic over the SD of lag-1 differences is
    # fall_ratio / dip_ratio; check against 400,000 simulated sessions.
    rng = np.random.default_rng(1)
    phi, n = 0.3, 400_000
    e = np.empty(n)
    e[0] = rng.normal()
    z = rng.normal(size=n) * math.sqrt(1 - phi**2)
    for t in range(1, n):
        e[t] = phi * e[t - 1] + z[t]
    diff_sd = np.std(e[:-1] - e[1:])
    fall = np.array([e[t - 3 : t].mean() - e[t] for t in range(3, 20_000)])
    assert fall.std() / diff_sd == pytest.approx(fall_ratio(phi, 3, 1), rel=0.03)
    dip = np.array([(e[t - 3 : t].mean() + e[t + 1 : t + 3].mean()) / 2 - e[t] for t in range(3, 20_000)])
    assert dip.std() / diff_sd == pytest.approx(dip_ratio(phi, 3, 2), rel=0.03)
    # phi = 0: fall variance 1/3 + 1 over difference variance 2
    assert fall_ratio(0.0, 3, 1) == pytest.approx(math.sqrt((1 / 3 + 1) / 2))
    # and the autocorrelation is recovered from consecutive differences
    d = e[:-1] - e[1:]
    pairs = np.stack([d[:-1], d[1:]], axis=1)
    assert autocorrelation(pairs, float(np.std(d))) == pytest.approx(phi, abs=0.05)


def test_hand_worked_v_with_fixed_noise():
    # noise="pooled" with difference SD sqrt(1.5) and no autocorrelation: the fall
    # statistic (mean of 3 previous scores - score) has SD sqrt(1.5) * sqrt((1/3 + 1)/2) = 1.
    # 10 sessions, no dip statistic: tests = 9, z = Phi^-1(1 - 0.05/9) = 2.539.
    x = [5.0, 5.0, 5.0, 5.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    kw = dict(rule="robust", noise="pooled", pooled_noise=(math.sqrt(1.5), 0.0), dip=False, center="none")
    res = at.detect(x, **kw)
    z = stats.norm.isf(0.05 / 9)
    assert math.isclose(res.clients.loc[0, "threshold"], z)
    # session 5: fall from 5 (mean of sessions 2-4) to 1 = 4 >= 2.539; return level
    # 5 - 0.5 * min(2.539, 4) = 3.73; session 6 (5) repairs.
    e = res.episodes.iloc[0]
    assert (e["start"], e["trough"], e["end"], e["status"], e["pre"], e["depth"]) == (5, 5, 6, "repaired", 5.0, 4.0)
    # a fall of 2 < 2.539 is not a rupture
    y = [5.0, 5.0, 5.0, 5.0, 3.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    assert len(at.detect(y, **kw).episodes) == 0


def test_dip_statistic_finds_a_v_the_fall_misses():
    # Same noise (fall SD 1); the dip statistic ((3 before + 2 after) / 2 - score)
    # has SD sqrt(1.5) * sqrt(((1/3 + 1/2)/4 + 1) / 2) = 0.952. With both statistics,
    # tests = 18 and z = Phi^-1(1 - 0.05/18) = 2.773.
    kw = dict(rule="robust", noise="pooled", pooled_noise=(math.sqrt(1.5), 0.0), center="none")
    z = stats.norm.isf(0.05 / 18)
    dip_sd = math.sqrt(1.5) * dip_ratio(0.0, 3, 2)
    assert round(z, 3) == 2.773 and round(dip_sd, 3) == 0.952
    # a V of 2.7: the fall 2.7 < 2.773, but the dip 2.7 / 0.952 = 2.84 >= 2.773
    v = [5.0, 5.0, 5.0, 5.0, 2.3, 5.0, 5.0, 5.0, 5.0, 5.0]
    res = at.detect(v, **kw)
    assert res.episodes[["start", "end"]].values.tolist() == [[5, 6]]
    # the same fall without a return: the dip is (5 + 2.3)/2 - 2.3 = 1.35, nothing found
    step = [5.0, 5.0, 5.0, 5.0, 2.3, 2.3, 2.3, 2.3, 2.3, 2.3]
    assert len(at.detect(step, **kw).episodes) == 0


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
    with pytest.raises(ValueError, match=r"parameter 'pooled_noise': must be None or a pair \(SD of lag-1 differences >= 0, noise autocorrelation in \(-1, 1\)\)"):
        at.detect([1.0, 2.0, 3.0], rule="robust", pooled_noise=(1.0, 2.0))
    with pytest.raises(ValueError, match="parameter 'noise': must be one of"):
        at.detect([1.0, 2.0, 3.0], rule="robust", noise="mad")


def test_constant_client_with_client_noise_is_excluded():
    res = at.detect([4.0] * 6, rule="robust", noise="client")
    assert not res.clients.loc[0, "included"]
    assert "noise estimate is 0" in res.clients.loc[0, "reason"]


def test_noise_is_bit_identical_alone_and_in_a_batch(monkeypatch):
    # the trimmed SD of a client's differences used to be summed pairwise over its padded
    # block row, so its last digit depended on the longest course in the batch (about 4% of
    # whole-point courses differed); now a client alone in its block (width = its own
    # length) and the clients in one wide block give bit-identical tables
    sim = at.simulate(1500, rng=6, n_sessions=(5, 40))
    whole = at.detect(sim.scores, "recommended", pooled_noise=(2.0, 0.1))
    import alliance_ts.panel

    monkeypatch.setattr(alliance_ts.panel, "BLOCK_CELLS", 1)  # one client per block
    alone = at.detect(sim.scores, "recommended", pooled_noise=(2.0, 0.1))
    for name in ("clients", "episodes", "sessions"):
        pd.testing.assert_frame_equal(getattr(whole, name), getattr(alone, name), check_exact=True)
