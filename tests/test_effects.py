"""Effect sizes: conversions, Fisher CIs and outcome contrasts worked by hand."""

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_ts as at
from alliance_ts.effects import d_to_r, fisher_ci, outcome_association, r_to_d
from alliance_ts.errors import InvalidInputError
from alliance_ts.result import Detection

# The hand-worked examples below compare groups of 3 to 9 clients, which now (rightly) issue a
# SmallGroupWarning; the tests that are about that warning catch it explicitly with pytest.warns.
pytestmark = pytest.mark.filterwarnings("ignore::alliance_ts.effects.SmallGroupWarning")


def test_conversions_by_hand():
    # d = 2r / sqrt(1 - r^2): .58 / sqrt(.9159) = .58 / .957027 = .606043
    assert r_to_d(0.29) == pytest.approx(0.606043, abs=1e-6)
    # r = d / sqrt(d^2 + 4): .62 / sqrt(4.3844) = .62 / 2.093896 = .296098
    assert d_to_r(0.62) == pytest.approx(0.296098, abs=1e-6)
    # unequal groups 20 and 80: a = 100^2 / 1600 = 6.25, d = 2.5 * .3 / sqrt(.91) = .786214
    assert r_to_d(0.3, 20, 80) == pytest.approx(0.786214, abs=1e-6)
    assert d_to_r(r_to_d(0.3, 20, 80), 20, 80) == pytest.approx(0.3)
    assert np.allclose(r_to_d(np.array([0.0, 0.5])), [0.0, 1.0 / math.sqrt(0.75)])
    with pytest.raises(InvalidInputError, match="give both group sizes"):
        r_to_d(0.3, 20)


@pytest.mark.parametrize("r, d", [(0.29, 0.62), (0.24, 0.50), (0.11, 0.22)])
def test_meta_analysis_pairs_within_rounding(r, d):
    # a printed r stands for any value in [r - .005, r + .005); the d it converts to must
    # overlap the printed d's rounding interval, and the other way round
    d_lo, d_hi = r_to_d(r - 0.005), r_to_d(r + 0.005)
    assert d_lo <= d + 0.005 and d - 0.005 <= d_hi
    r_lo, r_hi = d_to_r(d - 0.005), d_to_r(d + 0.005)
    assert r_lo <= r + 0.005 and r - 0.005 <= r_hi
    # the unrounded midpoints round to the printed pair for two of the three
    if r != 0.29:
        assert round(r_to_d(r), 2) in (d, round(d - 0.01, 2))
        assert round(d_to_r(d), 2) == r


def test_fisher_ci_by_hand():
    # r = .5, n = 28: z = atanh(.5) = .549306, half-width 1.959964 / 5 = .391993
    lo, hi = fisher_ci(0.5, 28)
    assert lo == pytest.approx(math.tanh(0.549306 - 0.391993), abs=1e-5)  # .156034
    assert hi == pytest.approx(math.tanh(0.549306 + 0.391993), abs=1e-5)  # .736017
    assert all(math.isnan(v) for v in fisher_ci(0.5, 3))


def hand_result():
    """Nine clients: 1-3 repaired, 4-6 unresolved, 7-9 without an episode."""
    episodes = pd.DataFrame({
        "client": [1, 2, 3, 4, 5, 6],
        "episode": 1,
        "status": ["repaired"] * 3 + ["unresolved"] * 3,
        "phase": ["early", "early", "late", "early", "late", "late"],
    })
    clients = pd.DataFrame({
        "client": range(1, 10),
        "included": True,
        "n_ruptures": [1, 1, 1, 1, 1, 1, 0, 0, 0],
        "pattern": ["repaired"] * 3 + ["unresolved"] * 3 + ["no_rupture"] * 3,
    })
    return Detection(episodes, pd.DataFrame(), clients, "hand")


OUTCOMES = pd.DataFrame({"id": range(1, 10), "gain": [3.0, 5, 7, 1, 2, 3, 2, 2, 5]})


def test_two_group_contrasts_by_hand():
    t = outcome_association(hand_result(), OUTCOMES, outcome="gain", client="id", by_phase=False).set_index("contrast")
    ru = t.loc["repaired_vs_unresolved"]
    # repaired 3, 5, 7 (mean 5, SS 8); unresolved 1, 2, 3 (mean 2, SS 2)
    # pooled SD = sqrt(10 / 4) = 1.581139; d = 3 / 1.581139 = 1.897367
    assert (ru["n1"], ru["n2"], ru["mean1"], ru["mean2"]) == (3, 3, 5.0, 2.0)
    assert ru["d"] == pytest.approx(1.897367, abs=1e-6)
    # r^2 = d^2 / (d^2 + (N - 2) N / (n1 n2)) = 3.6 / (3.6 + 24 / 9) -> r = .757937
    assert ru["r"] == pytest.approx(0.757937, abs=1e-6)
    assert ru["r"] == pytest.approx(np.corrcoef([1, 1, 1, 0, 0, 0], [3, 5, 7, 1, 2, 3])[0, 1])
    # t = d * sqrt(n1 n2 / N) = 1.897367 * sqrt(1.5) = 2.323790 on 4 df
    assert ru["p"] == pytest.approx(2 * stats.t.sf(2.323790, 4), abs=1e-6)
    # SE(d) = sqrt(6 / 9 + 3.6 / 12) = sqrt(.966667) = .983192
    assert ru["d_low"] == pytest.approx(1.897367 - 1.959964 * 0.983192, abs=1e-5)
    assert (ru["r_low"], ru["r_high"]) == pytest.approx(fisher_ci(0.757937, 6), abs=1e-6)

    rn = t.loc["repaired_vs_no_rupture"]
    # no rupture 2, 2, 5 (mean 3, SS 6): pooled SD = sqrt(14 / 4) = 1.870829, d = 2 / 1.870829 = 1.069045
    assert rn["d"] == pytest.approx(1.069045, abs=1e-6)
    assert (rn["group1"], rn["group2"]) == ("repaired", "no_rupture")


def test_number_of_repairs_by_hand():
    t = outcome_association(hand_result(), OUTCOMES, outcome="gain", client="id", contrast="n_repairs", by_phase=False)
    row = t.iloc[0]
    # x = 1,1,1,0,...,0; y = 3,5,7,1,2,3,2,2,5: Sxy = 15 - 9 (1/3)(10/3) = 5, Sxx = 3 - 1 = 2,
    # Syy = 130 - 100 = 30 -> r = 5 / sqrt(60) = .645497; d = 2r / sqrt(1 - r^2) = 1.690309
    assert row["n"] == 9
    assert row["r"] == pytest.approx(0.645497, abs=1e-6)
    assert row["d"] == pytest.approx(1.690309, abs=1e-6)
    assert pd.isna(row["n1"])


def test_phases_and_too_small_groups():
    t = outcome_association(hand_result(), OUTCOMES, outcome="gain", client="id",
                            contrast="repaired_vs_unresolved").set_index("phase")
    assert t.index.tolist() == ["all", "early", "middle", "late"]
    # early: repaired clients 1, 2 (3, 5) vs unresolved client 4 (1): one client is too few for an SD
    assert (t.loc["early", "n1"], t.loc["early", "n2"]) == (2, 1)
    assert math.isnan(t.loc["early", "d"])
    # late: repaired client 3 (7) vs unresolved 5, 6 (2, 3)
    assert (t.loc["late", "n1"], t.loc["late", "n2"]) == (1, 2)
    assert (t.loc["middle", "n1"], t.loc["middle", "n2"]) == (0, 0)


def test_lower_is_better_flips_signs_and_missing_outcomes_are_counted():
    up = outcome_association(hand_result(), OUTCOMES, outcome="gain", client="id", by_phase=False)
    down = outcome_association(hand_result(), OUTCOMES.assign(gain=-OUTCOMES["gain"]), outcome="gain", client="id",
                               higher_is_better=False, by_phase=False)
    assert np.allclose(up["d"], down["d"]) and np.allclose(up["r"], down["r"])
    fewer = outcome_association(hand_result(), OUTCOMES[OUTCOMES["id"] != 2], outcome="gain", client="id",
                                by_phase=False).set_index("contrast")
    assert fewer.loc["repaired_vs_unresolved", "n_no_outcome"] == 1
    assert fewer.loc["repaired_vs_unresolved", "n1"] == 2


def test_bad_arguments_are_reported_together():
    bad = pd.DataFrame({"id": [1, 1, 2], "gain": [1.0, "x", 2.0]})
    with pytest.raises(InvalidInputError) as info:
        outcome_association(hand_result(), bad, outcome="gain", client="id")
    assert [p.where for p in info.value.problems] == ["column 'id'", "column 'gain'"]
    with pytest.raises(InvalidInputError) as info:
        outcome_association(hand_result(), OUTCOMES, outcome="nope", client="id", contrast="better", level=2)
    assert len(info.value.problems) == 3


def test_simulated_effects_are_recovered_from_the_truth_in_a_large_trial():
    # the simulator plants d = .62 (repaired vs unresolved) and .50 (repaired vs no rupture)
    sim = at.simulate(6000, rng=9)
    c = sim.clients
    rep, unr, none = (c.loc[c["pattern"] == p, "outcome"] for p in ("repaired", "unresolved", "no_rupture"))
    assert rep.mean() - unr.mean() == pytest.approx(0.62, abs=0.12)
    assert rep.mean() - none.mean() == pytest.approx(0.50, abs=0.08)
    assert c["outcome"].std() == pytest.approx(1.0, abs=0.05)


def test_outcomes_that_match_nothing_or_name_unknown_clients():
    import warnings as w

    from alliance_ts import AllianceWarning
    from alliance_ts.errors import InvalidInputError

    # three analysed clients 1..3 (flat courses, no episodes)
    res = at.detect(pd.DataFrame({"client": [1] * 3 + [2] * 3 + [3] * 3, "session": [1, 2, 3] * 3,
                                  "score": [50.0, 51, 50] * 3}), rule="vshape", pooled_sd=1.0)
    good = pd.DataFrame({"client": [1, 2, 3], "outcome": [1.0, 2.0, 3.0]})
    for outcomes, message in [
        (good.iloc[:0], "the outcomes table has no rows"),
        (good.assign(outcome=np.nan), "every value of column 'outcome' is missing"),
        (good.assign(client=good["client"].astype(str)), "outcome ids e.g. '1', '2', '3', result ids e.g. 1, 2, 3"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            outcome_association(res, outcomes, outcome="outcome")
    # two outcome rows of clients 8 and 9 that the result does not have: used for nothing, and said so
    extra = pd.concat([good, pd.DataFrame({"client": [8, 9], "outcome": [0.0, 0.0]})])
    with pytest.warns(AllianceWarning, match=r"2 of 5 outcome rows name a client that is not in the result .* e.g. 8, 9"):
        table = outcome_association(res, extra, outcome="outcome", contrast="n_repairs", by_phase=False)
    assert table["n"].tolist() == [3] and table["n_no_outcome"].tolist() == [0]
    with w.catch_warnings():
        w.simplefilter("error")
        outcome_association(res, good, outcome="outcome", contrast="n_repairs", by_phase=False)


# --- therapists, covariates and small groups -------------------------------------------------

from alliance_ts.effects import FewClustersWarning, SmallGroupWarning  # noqa: E402


def patterned_result(patterns):
    """Clients 1..N with one episode each ("repaired" / "unresolved") or none ("no_rupture")."""
    ids = np.arange(1, len(patterns) + 1)
    with_episode = [(i, p) for i, p in zip(ids, patterns) if p != "no_rupture"]
    episodes = pd.DataFrame({"client": [i for i, _ in with_episode], "episode": 1,
                             "status": [p for _, p in with_episode], "phase": "early"})
    clients = pd.DataFrame({"client": ids, "included": True,
                            "n_ruptures": [int(p != "no_rupture") for p in patterns], "pattern": patterns})
    return Detection(episodes, pd.DataFrame(), clients, "hand")


# four therapists, each with three repaired and three unresolved clients (a balanced design)
BAL_REP = np.array([[3, 5, 4], [8, 9, 7], [12, 10, 11], [15, 17, 14]], float)
BAL_UNR = np.array([[1, 2, 2], [5, 7, 4], [9, 8, 10], [13, 12, 14]], float)


def balanced():
    patterns, gains, therapists = [], [], []
    for t in range(4):
        patterns += ["repaired"] * 3 + ["unresolved"] * 3
        gains += list(BAL_REP[t]) + list(BAL_UNR[t])
        therapists += [f"T{t}"] * 6
    outcomes = pd.DataFrame({"client": np.arange(1, 25), "gain": gains, "therapist": therapists})
    return patterned_result(patterns), outcomes


def test_mixed_model_in_a_balanced_design_by_hand():
    # Model y = mu + b g + u_t + e, u ~ N(0, tau2), e ~ N(0, s2). With 3 + 3 clients per therapist,
    # g's therapist mean is 1/2 everywhere, so the therapist means carry no information on b and
    # REML splits into two strata (the ANOVA estimators, when tau2 > 0):
    #   b    = mean(repaired) - mean(unresolved) = 115/12 - 87/12 = 7/3
    #   s2   = SSE of y ~ therapist + g / (N - G - 1) = 20.3333 / 19 = 1.070175
    #   SE b = sqrt(s2 / sum (g - g_t)^2) = sqrt(s2 / (4 * 6 * 1/4)) = sqrt(s2 / 6) = .422330
    #   tau2 = (MSB - s2) / 6 with MSB = 6 var(therapist means) = 6 var(2.8333, 6.6667, 10, 14.1667)
    #        = 139.6111 -> tau2 = 23.090156, ICC = tau2 / (tau2 + s2) = .955705
    res, outcomes = balanced()
    with pytest.warns(FewClustersWarning, match=r"1 estimate\(s\) rest on fewer than 10 clusters.*"
                                                r"repaired_vs_unresolved/all \(4 clusters\)"):
        row = outcome_association(res, outcomes, outcome="gain", therapist="therapist",
                                  contrast="repaired_vs_unresolved", by_phase=False).iloc[0]
    g = np.repeat([[1.0] * 3 + [0.0] * 3], 4, axis=0)
    y = np.hstack([BAL_REP, BAL_UNR])
    b = BAL_REP.mean() - BAL_UNR.mean()
    fitted = y.mean(axis=1, keepdims=True) + b * (g - 0.5)
    s2 = ((y - fitted) ** 2).sum() / (24 - 4 - 1)
    tau2 = (6 * y.mean(axis=1).var(ddof=1) - s2) / 6
    se = math.sqrt(s2 / 6)
    assert b == pytest.approx(7 / 3) and s2 == pytest.approx(1.070175, abs=1e-6)
    assert row["b"] == pytest.approx(b, abs=1e-6)
    assert row["b_se"] == pytest.approx(se, abs=1e-6) and se == pytest.approx(0.422330, abs=1e-6)
    assert row["b_low"] == pytest.approx(b - 1.959964 * se, abs=1e-5)
    assert row["p"] == pytest.approx(2 * stats.norm.sf(b / se), rel=1e-4)
    assert row["icc"] == pytest.approx(tau2 / (tau2 + s2), abs=1e-6)
    assert row["icc"] == pytest.approx(0.955705, abs=1e-6)
    # d = b / pooled within-group SD (unadjusted): s_p^2 = (11 var(rep) + 11 var(unr)) / 22
    sp = math.sqrt((11 * BAL_REP.var(ddof=1) + 11 * BAL_UNR.var(ddof=1)) / 22)
    assert row["d"] == pytest.approx(b / sp, abs=1e-6) and row["d_high"] == pytest.approx(row["b_high"] / sp)
    # r from d with a = (12 + 12)^2 / 144 = 4
    assert row["r"] == pytest.approx((b / sp) / math.sqrt((b / sp) ** 2 + 4), abs=1e-6)
    assert row["r_low"] == pytest.approx(row["d_low"] / math.sqrt(row["d_low"] ** 2 + 4))
    assert (row["n"], row["n1"], row["n2"], row["n_clusters"], row["n_excluded"]) == (24, 12, 12, 4, 0)
    assert (row["method"], row["covariates"]) == ("mixed model", "")
    # unadjusted: same d (balanced design), but the pooled-t interval ignores the therapists
    plain = outcome_association(res, outcomes, outcome="gain", contrast="repaired_vs_unresolved",
                                by_phase=False).iloc[0]
    assert plain["d"] == pytest.approx(row["d"]) and plain["b"] == pytest.approx(b)
    assert plain["b_se"] == pytest.approx(sp * math.sqrt(2 / 12)) and plain["b_se"] > 4 * row["b_se"]
    assert (plain["method"], plain["n_clusters"], plain["covariates"]) == ("pooled t", 0, "")
    assert math.isnan(plain["icc"])


def test_mixed_model_without_therapist_variance_is_pooled_ols():
    # 12 therapists, each with one repaired and one unresolved client. The ANOVA estimate of the
    # therapist variance, (MSB - s2) / 2, is negative here, so REML puts tau2 on the boundary 0:
    # the model is then OLS, s2 = RSS / (N - 2) and SE(b) = sqrt(s2 (1/12 + 1/12)); ICC = 0, and
    # statsmodels' boundary messages are not passed on.
    res, outcomes = balanced()
    y = np.array([[3, 5, 4, 1, 2, 2], [4, 2, 3, 3, 4, 1], [2, 4, 5, 2, 3, 1], [5, 3, 4, 2, 1, 2]], float)
    tid = np.repeat(np.arange(4), 6) * 3 + np.tile([0, 1, 2, 0, 1, 2], 4)
    outcomes = outcomes.assign(gain=y.ravel(), therapist=tid)
    yr, yu = y[:, :3].ravel(), y[:, 3:].ravel()
    b = yr.mean() - yu.mean()  # 44/12 - 24/12 = 5/3
    pairs = np.column_stack([yr, yu])  # therapist k has clients yr[k] and yu[k]
    s2_within = (((pairs - pairs.mean(axis=1, keepdims=True)) - np.array([b, -b]) / 2) ** 2).sum() / (24 - 12 - 1)
    msb = 2 * pairs.mean(axis=1).var(ddof=1)
    assert msb < s2_within  # .848485 < 1.212121
    import warnings as w

    with w.catch_warnings():
        w.simplefilter("error")
        row = outcome_association(res, outcomes, outcome="gain", therapist="therapist",
                                  contrast="repaired_vs_unresolved", by_phase=False).iloc[0]
    rss = ((yr - yr.mean()) ** 2).sum() + ((yu - yu.mean()) ** 2).sum()
    assert row["icc"] == 0 and row["n_clusters"] == 12
    assert row["b"] == pytest.approx(5 / 3, abs=1e-6)
    assert row["b_se"] == pytest.approx(math.sqrt(rss / 22 * (2 / 12)), abs=1e-6)


def trial(n_per_therapist=6, therapists=24, seed=3):
    """Repaired / unresolved / no-rupture clients spread over therapists, with a baseline and an arm."""
    rng = np.random.default_rng(seed)
    n = n_per_therapist * therapists
    patterns = list(np.resize(["repaired", "unresolved", "no_rupture"], n))
    rng.shuffle(patterns)
    tid = np.repeat(np.arange(therapists), n_per_therapist)
    base = rng.normal(20, 5, n)
    arm = rng.choice(["cbt", "tau"], n)
    g = np.array([{"repaired": 0.6, "unresolved": 0.0, "no_rupture": 0.2}[p] for p in patterns])
    gain = g - 0.1 * base + (arm == "cbt") * 0.4 + rng.normal(0, 0.8, therapists)[tid] + rng.normal(0, 1, n)
    outcomes = pd.DataFrame({"client": np.arange(1, n + 1), "gain": gain, "therapist": tid, "baseline": base,
                             "arm": pd.Categorical(arm, categories=["tau", "cbt"])})
    return patterned_result(patterns), outcomes


def test_covariate_adjustment_is_ordinary_least_squares():
    res, outcomes = trial()
    t = outcome_association(res, outcomes, outcome="gain", covariates=["baseline", "arm"], by_phase=False)
    row = t.set_index("contrast").loc["repaired_vs_no_rupture"]
    pat = res.clients["pattern"].to_numpy()
    sel = np.isin(pat, ["repaired", "no_rupture"])
    y = outcomes["gain"].to_numpy()[sel]
    X = np.column_stack([np.ones(sel.sum()), pat[sel] == "repaired", outcomes["baseline"].to_numpy()[sel],
                         outcomes["arm"].to_numpy()[sel] == "cbt"]).astype(float)
    beta, rss, *_ = np.linalg.lstsq(X, y, rcond=None)
    n, k = X.shape
    se = math.sqrt(rss[0] / (n - k) * np.linalg.inv(X.T @ X)[1, 1])
    tq = stats.t.ppf(0.975, n - k)
    assert row["b"] == pytest.approx(beta[1], abs=1e-9) and row["b_se"] == pytest.approx(se, abs=1e-9)
    assert (row["b_low"], row["b_high"]) == pytest.approx((beta[1] - tq * se, beta[1] + tq * se), abs=1e-9)
    assert row["p"] == pytest.approx(2 * stats.t.sf(abs(beta[1] / se), n - k), abs=1e-9)
    y1, y2 = y[X[:, 1] == 1], y[X[:, 1] == 0]
    n1, n2 = y1.size, y2.size
    sp = math.sqrt(((n1 - 1) * y1.var(ddof=1) + (n2 - 1) * y2.var(ddof=1)) / (n - 2))
    d = beta[1] / sp
    assert row["d"] == pytest.approx(d) and row["d_low"] == pytest.approx((beta[1] - tq * se) / sp)
    a = n ** 2 / (n1 * n2)
    assert row["r"] == pytest.approx(d / math.sqrt(d * d + a))
    assert (row["method"], row["covariates"], row["n_clusters"]) == ("OLS adjusted", "baseline, arm[cbt]", 0)
    assert (row["n"], row["n1"], row["n2"]) == (n, n1, n2) == (96, 48, 48)

    # n_repairs: standardised slope b * sd_x / sd_y over every client
    nr = t.set_index("contrast").loc["n_repairs"]
    x = (pat == "repaired").astype(float)
    y = outcomes["gain"].to_numpy()
    X = np.column_stack([np.ones(x.size), x, outcomes["baseline"], outcomes["arm"] == "cbt"]).astype(float)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    assert nr["b"] == pytest.approx(beta[1]) and nr["r"] == pytest.approx(beta[1] * x.std(ddof=1) / y.std(ddof=1))
    assert nr["r_low"] == pytest.approx(nr["b_low"] * x.std(ddof=1) / y.std(ddof=1))
    r = float(t.loc[t["contrast"] == "n_repairs", "r"].to_numpy()[0])
    assert nr["d"] == pytest.approx(2 * r / math.sqrt(1 - r**2))


def test_cluster_robust_standard_errors_are_the_cr1_sandwich():
    res, outcomes = trial()
    row = outcome_association(res, outcomes, outcome="gain", therapist="therapist", covariates="baseline",
                              cluster_method="robust", contrast="repaired_vs_unresolved", by_phase=False).iloc[0]
    pat = res.clients["pattern"].to_numpy()
    sel = np.isin(pat, ["repaired", "unresolved"])
    y, gid = outcomes["gain"].to_numpy()[sel], outcomes["therapist"].to_numpy()[sel]
    X = np.column_stack([np.ones(sel.sum()), pat[sel] == "repaired", outcomes["baseline"].to_numpy()[sel]])
    X = X.astype(float)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    u = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    meat = sum(np.outer(X[gid == g].T @ u[gid == g], X[gid == g].T @ u[gid == g]) for g in np.unique(gid))
    n, k, G = X.shape[0], X.shape[1], np.unique(gid).size
    V = G / (G - 1) * (n - 1) / (n - k) * bread @ meat @ bread
    se = math.sqrt(V[1, 1])
    tq = stats.t.ppf(0.975, G - 1)  # t with G - 1 df
    assert G == 24 and row["n_clusters"] == 24
    assert row["b"] == pytest.approx(beta[1], abs=1e-9) and row["b_se"] == pytest.approx(se, abs=1e-9)
    assert row["b_high"] == pytest.approx(beta[1] + tq * se, abs=1e-9)
    assert row["p"] == pytest.approx(2 * stats.t.sf(abs(beta[1] / se), G - 1), abs=1e-9)
    assert row["method"] == "cluster-robust OLS" and 0 <= row["icc"] < 1


def test_missing_cluster_and_covariate_values_are_excluded_and_counted():
    res, outcomes = trial()
    outcomes = outcomes.astype({"therapist": "float"})
    outcomes.loc[[0, 1], "therapist"] = np.nan  # clients 1, 2
    outcomes.loc[[2], "baseline"] = np.nan      # client 3
    outcomes.loc[[3], "gain"] = np.nan          # client 4: no outcome, counted as before
    with pytest.warns(at.AllianceWarning, match=r"3 analysed clients with an outcome are left out of the adjusted "
                                                r"estimates \(2 without a value of 'therapist'; 1 with a missing "
                                                r"covariate value; counted in column 'n_excluded'\); "
                                                r"e.g. clients 1, 2, 3"):
        t = outcome_association(res, outcomes, outcome="gain", therapist="therapist", covariates=["baseline"],
                                by_phase=False)
    pat = res.clients["pattern"].to_numpy()[:4]
    nr = t.set_index("contrast").loc["n_repairs"]
    assert (nr["n"], nr["n_no_outcome"], nr["n_excluded"], nr["n_clusters"]) == (144 - 4, 1, 3, 24)
    ru = t.set_index("contrast").loc["repaired_vs_unresolved"]
    out = int(np.isin(pat[:3], ["repaired", "unresolved"]).sum())
    assert ru["n_excluded"] == out and ru["n"] == 96 - out - int(pat[3] in ("repaired", "unresolved"))
    assert t["n"].tolist() == (t["n1"].fillna(0) + t["n2"].fillna(0)).where(t["contrast"] != "n_repairs",
                                                                             t["n"]).tolist()


def test_tiny_groups_warn_and_are_still_computed():
    # the case: two clients in a group
    patterns = ["repaired"] * 2 + ["unresolved"] * 12
    res = patterned_result(patterns)
    outcomes = pd.DataFrame({"client": range(1, 15), "gain": [4.0, 6.0] + [float(v) for v in range(12)]})
    with pytest.warns(SmallGroupWarning, match=r"1 estimate\(s\) rest on a group of fewer than 10 clients .* "
                                               r"repaired_vs_unresolved/all \(n1 = 2, n2 = 12\)"):
        t = outcome_association(res, outcomes, outcome="gain", contrast="repaired_vs_unresolved", by_phase=False)
    assert np.isfinite(t["d"].to_numpy()[0]) and t.loc[0, "n1"] == 2
    # groups too small for any estimate give NaN and no warning
    import warnings as w

    with w.catch_warnings():
        w.simplefilter("error")
        t = outcome_association(patterned_result(["repaired"] + ["unresolved"] * 12),
                                outcomes.iloc[1:].assign(client=range(1, 14)), outcome="gain",
                                contrast="repaired_vs_unresolved", by_phase=False)
    assert math.isnan(t["d"].to_numpy()[0])


def test_few_clusters_warn_for_cluster_robust_errors_below_twenty():
    res, outcomes = trial(n_per_therapist=12, therapists=12)
    with pytest.warns(FewClustersWarning, match=r"rest on fewer than 20 clusters, too few for a cluster-robust "
                                                r"OLS .* repaired_vs_unresolved/all \(12 clusters\)"):
        t = outcome_association(res, outcomes, outcome="gain", therapist="therapist", cluster_method="robust",
                                by_phase=False)
    assert t["n_clusters"].tolist() == [12, 12, 12]
    import warnings as w

    with w.catch_warnings():  # 12 clusters are enough for the mixed model's threshold of 10
        w.simplefilter("error")
        t = outcome_association(res, outcomes, outcome="gain", therapist="therapist", by_phase=False)
    assert (t["method"] == "mixed model").all() and t["b_se"].notna().all()


def test_lower_is_better_flips_the_adjusted_coefficient():
    res, outcomes = trial()
    kw: dict[str, Any] = dict(outcome="gain", therapist="therapist", covariates=["baseline"], by_phase=False)
    up = outcome_association(res, outcomes, **kw)
    down = outcome_association(res, outcomes.assign(gain=-outcomes["gain"]), higher_is_better=False, **kw)
    assert np.allclose(up["b"], down["b"], atol=1e-6) and np.allclose(up["d"], down["d"], atol=1e-6)


def test_bool_covariates_are_dummy_coded_and_text_is_refused():
    res, outcomes = trial()
    t = outcome_association(res, outcomes.assign(cbt=outcomes["arm"] == "cbt"), outcome="gain",
                            covariates=["cbt"], by_phase=False)
    assert (t["covariates"] == "cbt[True]").all()
    same = outcome_association(res, outcomes, outcome="gain", covariates=["arm"], by_phase=False)
    assert np.allclose(t["b"], same["b"])
    # numbers stored as text are numbers
    t = outcome_association(res, outcomes.assign(baseline=outcomes["baseline"].astype(str)), outcome="gain",
                            covariates=["baseline"], by_phase=False)
    assert t["b"].notna().all()


def test_bad_adjustment_arguments_are_reported_together():
    res, outcomes = trial()
    bad = outcomes.assign(arm=outcomes["arm"].astype(str))  # text, not a Categorical
    with pytest.raises(InvalidInputError) as info:
        outcome_association(res, bad, outcome="gain", therapist="site", covariates=["baseline", "age", "arm", "gain"],
                            cluster_method="bayes")
    problems = [str(p) for p in info.value.problems]
    assert len(problems) == 4
    assert problems[0].startswith("columns: 2 column(s) not found in outcomes: 'site', 'age'")
    assert "the outcome, client or cluster column cannot be a covariate: 'gain'" in problems[1]
    assert problems[2].startswith("column 'arm': 144 rows with a non-numeric covariate value; to dummy-code a "
                                  "categorical covariate pass outcomes['arm'].astype('category'); e.g. row 0")
    assert problems[3] == "parameter 'cluster_method': unknown method 'bayes'; valid: mixed, robust"


def test_clusters_that_cannot_be_estimated_fall_back_to_ols_and_say_so():
    sim = at.simulate(300, rng=3)
    res = at.detect(sim.scores, scale="wai-sr")
    # every client its own "therapist": the therapist variance cannot be told apart from the residual
    own = sim.clients.assign(th=sim.clients["client"], const=1.0)
    with pytest.warns(at.AllianceWarning, match="every cluster holds a single client"):
        table = outcome_association(res, own, outcome="outcome", by_phase=False, therapist="th",
                                    contrast="repaired_vs_unresolved")
    row = table.iloc[0]
    plain = outcome_association(res, own, outcome="outcome", by_phase=False, contrast="repaired_vs_unresolved")
    # without covariates the OLS coefficient of group membership is the difference of the group means
    assert row["method"] == "OLS adjusted (clusters not estimable)" and np.isnan(row["icc"])
    assert row["b"] == pytest.approx(plain.iloc[0]["mean1"] - plain.iloc[0]["mean2"])
    # one cluster for everyone: the same fallback; a constant covariate is left out, and the column says so
    with pytest.warns(at.AllianceWarning, match="all clients share one cluster") as caught:
        one = outcome_association(res, own.assign(th="T1"), outcome="outcome", by_phase=False, therapist="th",
                                  covariates=["const"], contrast="repaired_vs_unresolved").iloc[0]
    assert any("const constant among these clients" in str(w.message) for w in caught)
    assert one["method"] == "OLS adjusted (clusters not estimable)" and one["covariates"] == ""
    assert one["b"] == pytest.approx(row["b"])
