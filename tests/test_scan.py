"""The ``scan`` rule: templates, statistic, calibration, empirical-Bayes noise, FDR option, hard cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

import alliance_ts as at
from alliance_ts.noise import difference_autocorrelation, difference_noise, trigamma_inverse, variance_prior
from alliance_ts.panel import Panel
from alliance_ts.rules.scan import (
    benjamini_hochberg,
    calibration,
    moderated_t,
    null_statistics,
    patterns,
    projections,
    residual_df,
    templates,
)


def _long(x: np.ndarray, ids=None) -> pd.DataFrame:
    n, k = x.shape
    ids = np.arange(1, n + 1) if ids is None else np.asarray(ids)
    return pd.DataFrame({"client": np.repeat(ids, k), "session": np.tile(np.arange(1, k + 1), n),
                         "score": x.ravel()})


def _ar1(g: np.random.Generator, n: int, k: int, phi: float) -> np.ndarray:
    e = g.standard_normal((n, k))
    x = np.empty((n, k))
    x[:, 0] = e[:, 0]
    for j in range(1, k):
        x[:, j] = phi * x[:, j - 1] + math.sqrt(1 - phi * phi) * e[:, j]
    return x


# -- the empirical-Bayes prior ----------------------------------------------


def test_variance_prior_by_hand():
    # s2 = 1, 2, 4, 8 with 4 df each: e = log s2 - digamma(2) + log 2,
    # var(e) = var(0, 1, 2, 3) ln(2)^2 = (5/3) ln(2)^2, and trigamma(2) = pi^2/6 - 1
    target = (5 / 3) * math.log(2) ** 2 - (math.pi**2 / 6 - 1)  # = 0.155819...
    half = optimize.brentq(lambda v: special.polygamma(1, v) - target, 0.1, 1000)
    d0 = 2 * half
    e_mean = 1.5 * math.log(2) - special.digamma(2) + math.log(2)
    s0 = math.sqrt(math.exp(e_mean + special.digamma(half) - math.log(half)))
    got_s0, got_d0 = variance_prior(np.array([1.0, 2.0, 4.0, 8.0]), np.array([4, 4, 4, 4]))
    assert got_d0 == pytest.approx(d0, rel=1e-8)
    assert got_s0 == pytest.approx(s0, rel=1e-8)
    # order of the clients does not matter, zero variances do not count, fewer than 3 usable: undefined
    assert variance_prior(np.array([8.0, 0.0, 1.0, 4.0, 2.0]), np.array([4, 4, 4, 4, 4])) == (got_s0, got_d0)
    s0_nan, d0_zero = variance_prior(np.array([1.0, 2.0, 0.0]), np.array([4, 4, 4]))
    assert math.isnan(s0_nan) and d0_zero == 0.0


def test_variance_prior_infinite_when_variances_agree_beyond_sampling():
    # identical variances spread less than chi-square sampling would: d0 infinite (reported as 1e6)
    # and s0^2 = exp(mean e) = exp(-digamma(2) + log 2) for s2 = 1 with 4 df
    s0, d0 = variance_prior(np.ones(5), np.full(5, 4))
    assert d0 == 1e6
    assert s0 == pytest.approx(math.sqrt(math.exp(-special.digamma(2) + math.log(2))))


def test_trigamma_inverse():
    assert special.polygamma(1, trigamma_inverse(0.3)) == pytest.approx(0.3, rel=1e-9)


def test_robust_autocorrelation_of_ar1_noise_with_ruptures():
    # phi = 0.3: consecutive differences correlate -(1 - 0.3) / 2 = -0.35; 10% of courses get a 10-SD dip
    g = np.random.default_rng(4)
    x = _ar1(g, 3000, 15, 0.3) * np.exp(g.normal(0, 0.3, 3000))[:, None]
    x[g.random(3000) < 0.1, 7] -= 10
    n, k = x.shape
    panel = Panel.of_observed(pd.Index(np.arange(n)), x.ravel(), np.tile(np.arange(1, k + 1), n), np.full(n, k))
    phi = difference_autocorrelation(panel, np.arange(n))
    # within sampling error of 0.3 (about 0.015 for 42,000 pairs; the dips pull it down by about 0.02),
    # where the cut-off estimator of the robust rule is biased upwards (about 0.4)
    assert phi == pytest.approx(0.3, abs=0.05)
    assert abs(phi - 0.3) < abs(difference_noise(panel, np.arange(n))[1] - 0.3)


# -- templates and the statistic ---------------------------------------------


def test_one_session_dip_by_hand():
    # x = 10, 10, 4, 10, 10 (5 scores: level only), phi = 0, dip at position 2:
    # the residual of the template after the level is s - 1/5, |R|^2 = 1 - 1/5 = 0.8;
    # a = (mean - x_2) / sqrt(0.8) = (8.8 - 4) / sqrt(0.8); the null RSS = 4 x 1.2^2 + 4.8^2 = 28.8
    tpl = templates(5, 0.0, 5, 0)
    x = np.array([[10.0, 10, 4, 10, 10]])
    a, rss = projections(x, tpl)
    dip = np.flatnonzero((tpl.shape == 0) & (tpl.start == 2) & (tpl.stop == 3))[0]
    assert a[0, dip] == pytest.approx(4.8 / math.sqrt(0.8))
    assert rss[0] == pytest.approx(28.8)
    assert a[0].argmax() == dip
    # with that dip fitted nothing is left (28.8 - 4.8^2 / 0.8 = 0): a prior innovation variance of 1 with
    # 4 df gives s^2 = (0 + 4 x 1) / (nu + 4), nu = 5 - 1 - 1 = 3, so t = a / sqrt(4 / 7)
    assert residual_df(5, 0) == 3
    t = moderated_t(a[0, dip : dip + 1], rss, 3, 1.0, 4.0)
    assert t[0] == pytest.approx((4.8 / math.sqrt(0.8)) / math.sqrt(4 / 7))
    # without a prior that variance is 0: a real drop has infinite evidence
    assert moderated_t(a[0, dip : dip + 1], rss, 3, math.nan, 0.0, np.array([1e-12]))[0] == np.inf


@pytest.mark.parametrize("degree", [0, 1, 2])
@pytest.mark.parametrize("phi", [0.0, 0.35])
def test_projections_equal_dense_generalised_least_squares(degree, phi):
    # every template against an independent dense computation: P the AR(1) prewhitening matrix,
    # D the null design, R = (I - H) P s with H the hat matrix of P D, a = -<P x, R> / |R|
    k = 12
    tpl = templates(k, phi, 4, degree)
    g = np.random.default_rng(1)
    x = 50 + g.normal(0, 3, (3, k))
    P = np.eye(k) - phi * np.eye(k, k=-1)
    P[0, 0] = math.sqrt(1 - phi * phi)
    D = np.stack([np.arange(k) ** p for p in range(degree + 1)], axis=1).astype(float)
    PD = P @ D
    H = PD @ np.linalg.solve(PD.T @ PD, PD.T)
    S = patterns(tpl, np.arange(tpl.size))
    R = (np.eye(k) - H) @ P @ S.T  # k x K
    norm = np.linalg.norm(R, axis=0)
    want = -(x @ P.T) @ R / norm
    a, rss = projections(x, tpl)
    np.testing.assert_allclose(a, want, rtol=1e-9, atol=1e-9)
    resid = (np.eye(k) - H) @ P @ x.T
    np.testing.assert_allclose(rss, (resid**2).sum(axis=0), rtol=1e-9)
    # the shapes: a decline deepens to the full depth, a recovery starts there
    dec = np.flatnonzero(tpl.shape == 1)[0]
    np.testing.assert_allclose(S[dec, tpl.start[dec]: tpl.stop[dec]],
                               np.arange(1, tpl.stop[dec] - tpl.start[dec] + 1) / (tpl.stop[dec] - tpl.start[dec]))


def test_template_catalogue_counts():
    # k = 8, widths up to 3: dips of width w start at 1 .. k - 1 - w (6 + 5 + 4), declines and recoveries
    # of width 2 and 3 (5 + 4 each), sustained drops from 1 .. 7 (7)
    tpl = templates(8, 0.0, 3, 0)
    assert (tpl.shape == 0).sum() == 6 + 5 + 4
    assert (tpl.shape == 1).sum() == (tpl.shape == 2).sum() == 5 + 4
    assert (tpl.shape == 3).sum() == 7
    assert tpl.start.min() == 1  # a session before every episode
    assert tpl.stop[tpl.shape < 3].max() == 7  # a repair session after every repaired one


# -- calibration -------------------------------------------------------------


def test_calibration_of_the_known_noise_statistic():
    # with known noise the chance that a rupture-free course's largest statistic reaches the critical
    # value is 1 - (1 - Phi_bar(c))^m = 0.05 by construction; an independent simulation (other seed)
    # must agree within its Monte Carlo error (2,000 courses: SE 0.005)
    for k in (4, 15, 40):
        m = calibration(k, 0.3, 5, 1 if k >= 10 else 0)[4]  # CAL_LEVELS[4] = 0.05
        c = special.ndtri(1 - (-math.expm1(math.log1p(-0.05) / m)))
        top = null_statistics(k, 0.3, 5, 1 if k >= 10 else 0, math.inf, 2000, [1, 2, 3])
        assert abs((top >= c).mean() - 0.05) < 0.02, k


@pytest.mark.parametrize("k", [5, 20])
def test_false_alarm_rate_is_alpha_with_estimated_noise(k):
    # homogeneous AR(1) noise (phi 0.3), no ruptures, everything estimated from the data: about 5% of
    # 3,000 clients flagged (binomial SE 0.4%: a band of 5 SE)
    g = np.random.default_rng(11 + k)
    x = 40 + 3 * _ar1(g, 3000, k, 0.3)
    res = at.detect(_long(x), rule="scan")
    flagged = (res.clients["n_ruptures"] > 0).mean()
    assert abs(flagged - 0.05) < 0.02
    assert res.params["phi"] == pytest.approx(0.3, abs=0.06)


# -- detection ---------------------------------------------------------------


def test_ceiling_dip_found_alone_and_in_a_trial():
    # SRS at the ceiling: 40 at nine sessions, 20, then 40 again. The client's own noise is 0; alone, with
    # no prior to borrow, the drop has infinite evidence; in a trial the prior gives it a noise level
    one = pd.DataFrame({"client": "007", "session": range(1, 12), "score": [40] * 9 + [20, 40]})
    res = at.detect(one, rule="scan", scale="srs")
    ep = res.episodes
    assert ep[["client", "start", "end", "status"]].values.tolist() == [["007", 10, 11, "repaired"]]
    assert ep["z"].iloc[0] == np.inf and ep["p"].iloc[0] == 0.0
    sim = at.simulate(150, rng=2, scale="srs", baseline=0.9, baseline_sd=0.05)
    trial = pd.concat([sim.scores.assign(client=sim.scores["client"].map("c{}".format)), one])
    res = at.detect(trial, rule="scan", scale="srs")
    row = res.clients.set_index("client").loc["007"]
    assert row["n_ruptures"] == 1 and 0 < row["noise"] < np.inf and row["z"] > row["threshold"]
    assert res.episodes.set_index("client").loc["007", "start"] == 10


def test_long_course_single_dip():
    # 10,000 sessions of AR(1) noise (SD 3) with one 6-SD dip at session 5001
    g = np.random.default_rng(3)
    x = 45 + 3 * _ar1(g, 1, 10000, 0.3)
    x[0, 5000] -= 18
    res = at.detect(_long(x), rule="scan")
    assert res.episodes[["start", "end"]].values.tolist() == [[5001, 5002]]


def test_two_episodes_and_their_shapes():
    # a clear V at session 5 and a decline over sessions 12-14 repaired at 15 in a 20-session course
    g = np.random.default_rng(5)
    x = 50 + 1.0 * _ar1(g, 1, 20, 0.0)
    x[0, 4] -= 12
    x[0, 11:14] -= np.array([4.0, 8.0, 12.0])
    res = at.detect(_long(x), rule="scan", noise=1.0 * math.sqrt(2), prior_df=20.0, phi=0.0)
    ep = res.episodes
    assert ep[["start", "end"]].values.tolist() == [[5, 6], [12, 15]]
    assert ep["shape"].tolist() == ["dip", "decline"]
    assert (ep["p"] < 0.05).all()


def test_fdr_cut_is_benjamini_hochberg_of_the_clients_p_values():
    sim = at.simulate(300, rng=7)
    res = at.detect(sim.scores, rule="scan", fdr=0.1)
    p = res.clients["p"].to_numpy(dtype=float)
    cut = benjamini_hochberg(p, 0.1)
    assert res.params["fdr_cut"] == cut
    flagged = res.clients["n_ruptures"].fillna(0).to_numpy() > 0
    np.testing.assert_array_equal(flagged, p <= cut)
    # the p-values of the flagged clients: their expected share of false discoveries is at most 10%
    assert cut > 0 and flagged.sum() > 0


def test_benjamini_hochberg_by_hand():
    # sorted p: .001 .008 .039 .041 .042 .06 .074 .205 (8); line i x .05 / 8 = .00625 i:
    # .001 <= .00625, .008 <= .0125, .039 > .01875, .041 > .025, ... so the cut is 2 x .05 / 8 = .0125
    p = np.array([0.205, 0.001, 0.039, 0.008, 0.041, 0.042, 0.06, 0.074, np.nan])
    assert benjamini_hochberg(p, 0.05) == pytest.approx(0.0125)
    assert benjamini_hochberg(np.array([0.5, 0.9]), 0.05) == 0.0


def test_results_do_not_depend_on_ids_order_or_batching():
    sim = at.simulate(120, rng=9)
    df = sim.scores
    base = at.detect(df, rule="scan")
    shuffled = df.sample(frac=1.0, random_state=1).assign(client=lambda d: d["client"].map("{:05d}".format))
    other = at.detect(shuffled, rule="scan")
    a = base.episodes.assign(client=base.episodes["client"].map("{:05d}".format)).reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns="rule"), other.episodes.drop(columns="rule").reset_index(drop=True))
    assert base.params == other.params


def test_parameters_that_contradict_each_other_are_reported_together():
    df = at.simulate(5, rng=1).scores
    with pytest.raises(at.InvalidInputError) as err:
        at.detect(df, rule="scan", curve_from=5, fdr_cut=0.1)
    where = [p.where for p in err.value.problems]
    assert where == ["parameter 'curve_from'", "parameter 'fdr_cut'"]


def test_a_never_decreasing_course_has_no_episode_whatever_its_trend():
    # flat, then one point up at the end: against the fitted trend the flat part "falls", but no score does
    df = pd.DataFrame({"client": 1, "session": range(1, 12), "score": [12.0] * 10 + [13.0]})
    res = at.detect(df, rule="scan", noise=1.0, prior_df=10.0, phi=0.0)
    assert res.episodes.empty and res.clients["n_ruptures"].tolist() == [0]


def test_three_scores_alone_are_not_enough_to_estimate_the_noise():
    # 50, 30, 50 alone: a level and a one-session dip fit it exactly, leaving 3 - 1 - 1 = 1 residual df
    # (and no other client to borrow from): not analysed, with the reason; with 4 scores (2 df) it is
    alone = pd.DataFrame({"client": "a", "session": [1, 2, 3], "score": [50.0, 30.0, 50.0]})
    row = at.detect(alone, rule="scan").clients.iloc[0]
    assert not row["included"] and "2 residual degrees of freedom" in row["reason"]
    four = pd.DataFrame({"client": "a", "session": [1, 2, 3, 4], "score": [50.0, 30.0, 50.0, 50.0]})
    res = at.detect(four, rule="scan")
    assert res.episodes[["start", "end"]].values.tolist() == [[2, 3]]
