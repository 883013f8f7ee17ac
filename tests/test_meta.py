"""Pooling across studies or sites (alliance_ts.meta.pool): checked against values worked out here."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import alliance_ts as at
from alliance_ts.effects import d_to_r, outcome_association, r_to_d
from alliance_ts.errors import InvalidInputError
from alliance_ts.meta import Pooled, pool

# four studies of r with their sample sizes
TABLE = pd.DataFrame({"study": ["A", "B", "C", "D"], "r": [0.10, 0.30, 0.35, 0.60], "n": [40, 60, 100, 30]})

# simulated outcome means by true pattern (the sites' effects)
OUTCOME_MEANS = {"no_rupture": 0.0, "repaired": 0.6, "unresolved": -0.2, "mixed": 0.2}

# BCG vaccine trials (Colditz et al., 1994; metafor's dat.bcg): tpos, tneg, cpos, cneg, absolute latitude
BCG = np.array([
    [4, 119, 11, 128, 44], [6, 300, 29, 274, 55], [3, 228, 11, 209, 42], [62, 13536, 248, 12619, 52],
    [33, 5036, 47, 5761, 13], [180, 1361, 372, 1079, 44], [8, 2537, 10, 619, 19], [505, 87886, 499, 87892, 13],
    [29, 7470, 45, 7232, 27], [17, 1699, 65, 1600, 42], [186, 50448, 141, 27197, 18], [5, 2493, 3, 2338, 33],
    [27, 16886, 29, 17825, 33],
], dtype=float)


def bcg_table():
    tp, tn, cp, cn, lat = BCG.T
    yi = np.log(tp / (tp + tn)) - np.log(cp / (cp + cn))  # log risk ratio
    vi = 1 / tp - 1 / (tp + tn) + 1 / cp - 1 / (cp + cn)
    return pd.DataFrame({"study": range(1, 14), "d": yi, "v": vi, "ablat": lat})


def reml_by_grid(y, v, X=None):
    """Maximise the restricted log-likelihood over a grid, then refine on a finer grid."""
    X = np.ones((len(y), 1)) if X is None else X

    def ll(t):
        w = 1 / (v + t)
        xtwx = X.T @ (w[:, None] * X)
        b = np.linalg.solve(xtwx, X.T @ (w * y))
        e = y - X @ b
        return -0.5 * (np.sum(np.log(v + t)) + np.linalg.slogdet(xtwx)[1] + np.sum(w * e**2))

    grid = np.linspace(0, 2, 20001)
    best = grid[np.argmax([ll(t) for t in grid])]
    fine = np.linspace(max(best - 2e-4, 0), best + 2e-4, 4001)
    return fine[np.argmax([ll(t) for t in fine])]


def test_dersimonian_laird_worked_by_hand():
    # Fisher z_i = atanh(r_i); v_i = 1/(n_i - 3), so the fixed-effect weights are w_i = n_i - 3
    z = np.arctanh([0.10, 0.30, 0.35, 0.60])
    np.testing.assert_allclose(z, [0.100335, 0.309520, 0.365444, 0.693147], atol=1e-6)
    w = np.array([37.0, 57.0, 97.0, 27.0])
    sum_w = 218.0
    sum_wz = 37 * z[0] + 57 * z[1] + 97 * z[2] + 27 * z[3]  # 75.5180
    sum_wz2 = 37 * z[0] ** 2 + 57 * z[1] ** 2 + 97 * z[2] ** 2 + 27 * z[3] ** 2  # 31.7597
    mu_fixed = sum_wz / sum_w  # 0.34641
    q = sum_wz2 - sum_wz**2 / sum_w  # 5.5993
    c = sum_w - (37**2 + 57**2 + 97**2 + 27**2) / sum_w  # 218 - 14756/218 = 150.3119
    tau2 = max(0.0, (q - 3) / c)  # (5.5993 - 3)/150.3119 = 0.017293
    assert round(q, 4) == 5.5993 and round(c, 4) == 150.3119 and round(tau2, 6) == 0.017293
    w_star = 1 / (1 / w + tau2)  # random-effects weights
    mu = np.sum(w_star * z) / np.sum(w_star)  # 0.350758
    se = 1 / math.sqrt(np.sum(w_star))  # 0.097172
    ci_z = (mu - 1.959964 * se, mu + 1.959964 * se)
    i2 = (q - 3) / q  # 0.4642
    pi_half = stats.t.ppf(0.975, 2) * math.sqrt(tau2 + se**2)  # t with k - 2 = 2 df

    res = pool(TABLE, method="DL")
    assert isinstance(res, Pooled)
    assert (res.k, res.n_total, res.q_df) == (4, 230, 3)
    assert res.q == pytest.approx(q, rel=1e-10)
    assert res.tau2 == pytest.approx(tau2, rel=1e-10)
    assert res.tau == pytest.approx(math.sqrt(tau2))
    assert res.estimate == pytest.approx(mu, rel=1e-10)
    assert res.se == pytest.approx(se, rel=1e-10)
    assert res.ci == pytest.approx(ci_z, rel=1e-6)
    assert res.z == pytest.approx(mu / se) and res.p == pytest.approx(2 * stats.norm.sf(mu / se))
    assert res.r == pytest.approx(math.tanh(mu)) and res.r == pytest.approx(0.337047, abs=1e-6)
    assert res.r_ci == pytest.approx((math.tanh(ci_z[0]), math.tanh(ci_z[1])), rel=1e-6)
    assert res.d == pytest.approx(r_to_d(math.tanh(mu)))
    assert res.d_ci == pytest.approx((r_to_d(res.r_ci[0]), r_to_d(res.r_ci[1])))
    assert res.i2 == pytest.approx(i2) and res.h2 == pytest.approx(q / 3)
    assert res.q_p == pytest.approx(stats.chi2.sf(q, 3))
    assert res.pi == pytest.approx((mu - pi_half, mu + pi_half))
    assert mu_fixed == pytest.approx(0.346413, abs=1e-6)
    # the study table: weights in percent, each study's CI back-transformed from z
    st = res.studies
    assert list(st.columns) == ["study", "value", "n", "y", "variance", "se", "weight_fixed", "weight_random",
                                "ci_low", "ci_high"]
    np.testing.assert_allclose(st["weight_fixed"], 100 * w / sum_w)
    np.testing.assert_allclose(st["weight_random"], 100 * w_star / w_star.sum())
    np.testing.assert_allclose(st["ci_low"], np.tanh(z - 1.959964 / np.sqrt(w)), rtol=1e-6)


def test_statsmodels_dl_tau2_is_the_hand_written_one_and_truncated_at_zero():
    from statsmodels.stats.meta_analysis import combine_effects

    z, v = np.arctanh(TABLE["r"].to_numpy()), 1 / (TABLE["n"].to_numpy() - 3.0)
    assert combine_effects(z, v, method_re="dl").tau2 == pytest.approx(0.0172926, abs=1e-7)
    # homogeneous studies: Q < df, statsmodels' DL is negative, pool() truncates it at 0
    same = pd.DataFrame({"study": list("abcd"), "r": [0.30, 0.31, 0.29, 0.30], "n": [50, 60, 70, 80]})
    zs, vs = np.arctanh(same["r"].to_numpy()), 1 / (same["n"].to_numpy() - 3.0)
    with np.errstate(invalid="ignore"):  # statsmodels takes the square root of a negative variance
        assert combine_effects(zs, vs, method_re="dl").tau2 < 0
    res = pool(same, method="DL")
    assert res.tau2 == 0 and res.i2 == 0
    assert res.estimate == pytest.approx(pool(same, method="FE").estimate)


def test_fixed_effect_is_the_inverse_variance_mean():
    z, w = np.arctanh(TABLE["r"].to_numpy()), TABLE["n"].to_numpy() - 3.0
    res = pool(TABLE, method="FE")
    assert res.tau2 == 0 and np.isnan(res.pi).all()  # no prediction interval for a common effect
    assert res.estimate == pytest.approx(np.sum(w * z) / w.sum())
    assert res.se == pytest.approx(1 / math.sqrt(w.sum()))
    np.testing.assert_allclose(res.studies["weight_random"], res.studies["weight_fixed"])


def test_paule_mandel_solves_the_generalised_q_equation():
    z, v = np.arctanh(TABLE["r"].to_numpy()), 1 / (TABLE["n"].to_numpy() - 3.0)

    def q_gen(t):
        w = 1 / (v + t)
        m = np.sum(w * z) / w.sum()
        return np.sum(w * (z - m) ** 2) - (len(z) - 1)

    tau2 = optimize.brentq(q_gen, 0, 1, xtol=1e-14)
    res = pool(TABLE, method="PM")
    assert res.tau2 == pytest.approx(tau2, rel=1e-6)
    assert res.tau2 == pytest.approx(0.027692, abs=1e-6)
    assert res.estimate == pytest.approx(np.sum(z / (v + tau2)) / np.sum(1 / (v + tau2)), rel=1e-6)


def test_reml_maximises_the_restricted_likelihood():
    z, v = np.arctanh(TABLE["r"].to_numpy()), 1 / (TABLE["n"].to_numpy() - 3.0)
    res = pool(TABLE, method="REML")
    assert res.tau2 == pytest.approx(reml_by_grid(z, v), abs=2e-7)
    # a table with no excess heterogeneity: the maximum is at the boundary, tau² = 0
    same = pd.DataFrame({"study": list("abcd"), "r": [0.30, 0.31, 0.29, 0.30], "n": [50, 60, 70, 80]})
    assert pool(same).tau2 == 0 == reml_by_grid(np.arctanh(same["r"].to_numpy()), 1 / (same["n"].to_numpy() - 3.0))


def test_bcg_published_values():
    # Viechtbauer (2010), the metafor paper: log risk ratios of the BCG trials
    t = bcg_table()
    reml = pool(t, effect="d", variance="v", method="REML")
    assert round(reml.tau2, 4) == 0.3132 and round(reml.estimate, 4) == -0.7145 and round(reml.se, 4) == 0.1798
    assert round(reml.q, 2) == 152.23
    assert round(pool(t, effect="d", variance="v", method="DL").tau2, 4) == 0.3088
    assert reml.tau2 == pytest.approx(reml_by_grid(t["d"].to_numpy(), t["v"].to_numpy()), abs=2e-7)
    # mixed-effects meta-regression on absolute latitude (REML)
    reg = pool(t, effect="d", variance="v", method="REML", moderators="ablat")
    coef = reg.regression.set_index("term")
    # metafor stops its Fisher scoring at a tolerance of 1e-5 and prints 0.0764; the maximum is 0.07635
    assert reg.qm["tau2"] == pytest.approx(0.0764, abs=1e-4)
    assert round(coef.loc["intercept", "estimate"], 4) == 0.2515 and round(coef.loc["ablat", "estimate"], 4) == -0.0291
    assert round(coef.loc["intercept", "se"], 4) == 0.2491 and round(coef.loc["ablat", "se"], 4) == 0.0072
    assert round(reg.qm["q_e"], 2) == 30.73 and reg.qm["q_e_df"] == 11
    X = np.column_stack([np.ones(13), t["ablat"]])
    assert reg.qm["tau2"] == pytest.approx(reml_by_grid(t["d"].to_numpy(), t["v"].to_numpy(), X), abs=2e-7)


def test_knapp_hartung_scales_the_variance_and_uses_t():
    z, v = np.arctanh(TABLE["r"].to_numpy()), 1 / (TABLE["n"].to_numpy() - 3.0)
    plain = pool(TABLE, method="DL")
    kh = pool(TABLE, method="DL", knapp_hartung=True)
    w = 1 / (v + plain.tau2)
    q_kh = np.sum(w * (z - plain.estimate) ** 2) / 3  # not truncated at 1
    se = math.sqrt(q_kh / w.sum())
    half = stats.t.ppf(0.975, 3) * se
    assert kh.estimate == pytest.approx(plain.estimate)
    assert kh.se == pytest.approx(se) and kh.ci == pytest.approx((kh.estimate - half, kh.estimate + half))
    assert kh.p == pytest.approx(2 * stats.t.sf(kh.estimate / se, 3))
    assert (kh.ci[1] - kh.ci[0] > plain.ci[1] - plain.ci[0]) == (q_kh * stats.t.ppf(0.975, 3) ** 2 > 1.959964**2)
    # homogeneous studies: q < 1 narrows the scaled SE below the Wald one (metafor's default, no truncation)
    same = pd.DataFrame({"study": list("abcd"), "r": [0.30, 0.31, 0.29, 0.30], "n": [50, 60, 70, 80]})
    assert pool(same, method="DL", knapp_hartung=True).se < pool(same, method="DL").se
    # the prediction interval uses the reported SE and t on k - 2 df
    assert kh.pi[1] - kh.estimate == pytest.approx(stats.t.ppf(0.975, 2) * math.sqrt(kh.tau2 + se**2))


def test_meta_regression_with_a_binary_moderator_matches_wls():
    sm = pytest.importorskip("statsmodels.api")
    t = TABLE.assign(cbt=[0, 0, 1, 1], r=[0.10, 0.20, 0.35, 0.50])
    t = pd.concat([t, pd.DataFrame({"study": ["E", "F"], "r": [0.05, 0.45], "n": [80, 50], "cbt": [0, 1]})],
                  ignore_index=True)
    z, v = np.arctanh(t["r"].to_numpy()), 1 / (t["n"].to_numpy() - 3.0)
    X = np.column_stack([np.ones(6), t["cbt"]])
    for method in ("FE", "DL", "REML"):
        res = pool(t, method=method, moderators=["cbt"])
        tau2 = res.qm["tau2"]
        fit = sm.WLS(z, X, weights=1 / (v + tau2)).fit()
        coef = res.regression.set_index("term")
        np.testing.assert_allclose(coef["estimate"], fit.params, rtol=1e-10)
        # WLS estimates a scale; the meta-regression fixes it at 1 (normalized_cov_params)
        np.testing.assert_allclose(coef["se"], np.sqrt(np.diag(fit.normalized_cov_params)), rtol=1e-10)
        qm = coef.loc["cbt", "estimate"] ** 2 / coef.loc["cbt", "se"] ** 2
        assert res.qm["stat"] == pytest.approx(qm) and res.qm["df"] == 1
        assert res.qm["p"] == pytest.approx(stats.chi2.sf(qm, 1))
        kh = pool(t, method=method, moderators="cbt", knapp_hartung=True)
        np.testing.assert_allclose(kh.regression["se"], fit.bse, rtol=1e-10)  # the scaled WLS SE
        assert kh.qm["test"] == "F" and kh.qm["df2"] == 4
        assert kh.qm["p"] == pytest.approx(stats.f.sf(kh.qm["stat"], 1, 4))
    # DL for a meta-regression: method of moments with fixed-effect weights
    w = 1 / v
    e = z - X @ np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * z))
    q_e = np.sum(w * e**2)
    denom = w.sum() - np.trace(np.linalg.inv(X.T @ (w[:, None] * X)) @ (X.T @ ((w**2)[:, None] * X)))
    res = pool(t, method="DL", moderators="cbt")
    assert res.qm["tau2"] == pytest.approx(max(0.0, (q_e - 4) / denom))
    assert res.qm["q_e"] == pytest.approx(q_e) and res.qm["i2"] == pytest.approx(max(0.0, (q_e - 4) / q_e))


def test_d_effects_with_variance_n_or_group_sizes():
    t = pd.DataFrame({"study": ["a", "b", "c"], "d": [0.2, 0.6, 0.9], "n": [40, 80, 60]})
    res = pool(t, effect="d", method="FE")
    v = 4 / t["n"] + t["d"] ** 2 / (2 * t["n"])  # equal groups
    np.testing.assert_allclose(res.studies["variance"], v)
    assert res.d == pytest.approx(np.sum(t["d"] / v) / np.sum(1 / v))
    assert res.r == pytest.approx(d_to_r(res.d))
    g = pd.DataFrame({"study": ["a", "b"], "d": [0.2, 0.6], "n1": [10, 30], "n2": [30, 50]})
    np.testing.assert_allclose(pool(g, effect="d").studies["variance"],
                               [40 / 300 + 0.04 / 80, 80 / 1500 + 0.36 / 160])
    given = pd.DataFrame({"study": ["a", "b"], "g": [0.2, 0.6], "var": [0.1, 0.05]})
    res = pool(given, effect="d", value="g", variance="var", method="FE")
    assert math.isnan(res.n_total) and "N =" not in res.report()
    assert res.estimate == pytest.approx((0.2 / 0.1 + 0.6 / 0.05) / 30)


def test_report_text():
    res = pool(TABLE, method="DL")
    # DL by hand: tau² = 0.0172926, mu = sum(w* y)/sum(w*) = 0.350758, SE = sum(w*)^-1/2 = 0.0971724,
    # z = 0.350758 / 0.0971724 = 3.61; common effect: z = 0.346413 / 0.0677285 = 5.11
    assert res.report() == ("r = .34, 95% CI [.16, .49], z = 3.61, p < .001 (random effects, DerSimonian-Laird), "
                            "k = 4, N = 230; d = 0.72; Q(3) = 5.60, p = .13; I² = 46%; tau² = 0.017; "
                            "95% prediction interval [-.34, .78]")
    assert pool(TABLE, method="FE").report() == ("r = .33, 95% CI [.21, .45], z = 5.11, p < .001 (common-effect "
                                                 "model), k = 4, N = 230; d = 0.71; Q(3) = 5.60, p = .13; I² = 46%")
    assert "t(3) = " in pool(TABLE, method="DL", knapp_hartung=True).report()
    assert "DerSimonian-Laird, Knapp-Hartung)" in pool(TABLE, method="DL", knapp_hartung=True).report()
    big = pd.DataFrame({"study": range(12), "r": np.linspace(-0.2, 0.7, 12), "n": [150] * 12})
    text = pool(big, level=0.9).report()
    assert "90% CI" in text and "Q(11) =" in text and "p < .001" in text and "N = 1,800" in text
    frame = res.to_frame()
    assert len(frame) == 1 and {"r", "r_ci_low", "pi_high", "tau2", "i2"} <= set(frame.columns)
    # the prediction interval in r beside the one in z: tanh of the z bounds
    assert frame.loc[0, "r_pi_high"] == pytest.approx(math.tanh(frame.loc[0, "pi_high"]))


def test_group_sizes_win_over_n_for_d():
    # the usual extraction sheet has n, n1 and n2: the exact variance uses the group sizes,
    # (n1 + n2) / (n1 n2) + d² / (2 (n1 + n2)): study B, 25 + 35: 60/875 + 0.49/120 = 0.072655
    t = pd.DataFrame({"study": ["A", "B"], "d": [0.4, 0.7], "n": [40, 60], "n1": [20, 25], "n2": [20, 35]})
    assert pool(t, effect="d").studies["variance"].tolist()[1] == pytest.approx(60 / 875 + 0.49 / 120)
    with pytest.raises(InvalidInputError, match="1 studies whose n is not n1 \\+ n2"):
        pool(t.assign(n=[40, 61]), effect="d")


@pytest.fixture(scope="module")
def sites():
    means = OUTCOME_MEANS
    out = {}
    for name, seed in (("site 1", 11), ("site 2", 12), ("site 3", 13)):
        sim = at.simulate(400, rng=seed, outcome_means=means)
        out[name] = (at.detect(sim.scores, scale="wai-sr"), sim.clients)
    return out


def test_detection_results_per_site(sites):
    trials = {name: res for name, (res, _) in sites.items()}
    outcomes = {name: clients for name, (_, clients) in sites.items()}
    pooled = pool(trials, outcomes=outcomes, outcome="outcome", method="DL")
    for name, (res, clients) in sites.items():
        row = outcome_association(res, clients, outcome="outcome", contrast="repaired_vs_unresolved",
                                  by_phase=False).iloc[0]
        got = pooled.studies.set_index("study").loc[name]
        assert got["value"] == pytest.approx(row["r"]) and got["n"] == row["n"]
    as_table = pool(pooled.studies[["study", "value", "n"]].rename(columns={"value": "r"}), method="DL")
    assert pooled.estimate == pytest.approx(as_table.estimate)
    # a list of pairs works too, and another contrast
    other = pool(list(trials.items()), outcomes=outcomes, outcome="outcome", contrast="n_repairs")
    assert other.k == 3
    # one outcomes table for all sites needs ids that are unique across sites
    shared = pd.concat(list(outcomes.values()))
    with pytest.raises(InvalidInputError, match="client ids occur in more than one study"):
        pool(trials, outcomes=shared, outcome="outcome")


def test_one_outcomes_table_with_unique_ids(sites):
    trials, frames = {}, []
    for k, (name, (_, clients)) in enumerate(sites.items()):
        scores = at.simulate(400, rng=11 + k, outcome_means=OUTCOME_MEANS).scores.assign(client=lambda s, k=k: s["client"] + 1000 * k)
        trials[name] = at.detect(scores, scale="wai-sr")
        frames.append(clients.assign(client=clients["client"] + 1000 * k))
    one = pool(trials, outcomes=pd.concat(frames), outcome="outcome")  # no warning about other sites' clients
    per_site = pool(trials, outcomes=dict(zip(trials, frames)), outcome="outcome")
    assert one.estimate == pytest.approx(per_site.estimate)


def problems_of(excinfo):
    return [str(p) for p in excinfo.value.problems]


def test_every_bad_table_problem_is_listed_once():
    bad = pd.DataFrame({"study": ["A", "A", "C"], "r": [0.2, 1.0, 0.3], "n": [50, 60, 3]})
    with pytest.raises(InvalidInputError) as e:
        pool(bad, method="XYZ")
    text = "\n".join(problems_of(e))
    assert len(e.value.problems) == 4
    assert "unknown method 'XYZ'" in text and "valid: FE, DL, PM, REML" in text
    assert "2 rows share their study name" in text
    assert "1 correlations with |r| >= 1" in text and "n <= 3" in text
    assert str(e.value).startswith("alliance_ts.effects.pool(): 4 problems")


@pytest.mark.parametrize(("table", "kwargs", "message"), [
    (TABLE.drop(columns="n"), {}, "column(s) not found in the table: 'n'"),
    (TABLE, {"value": "rho"}, "'rho'"),
    (TABLE.iloc[:1], {}, "at least 2 studies, got 1"),
    (TABLE.assign(r=[0.1, np.nan, 0.2, 0.3]), {}, "missing or non-numeric"),
    (TABLE.assign(r=["0.1", "x", "0.2", "0.3"]), {}, "missing or non-numeric"),
    (TABLE.assign(v=[0.1, 0.0, -1, 0.2]).rename(columns={"r": "d"}), {"effect": "d", "variance": "v"},
     "2 variances <= 0"),
    (TABLE, {"effect": "g"}, "must be 'r' or 'd'"),
    (TABLE, {"level": 95}, "between 0 and 1"),
    (TABLE, {"variance": "n"}, "only for effect='d'"),
    (TABLE.assign(kind=["a", "b", "a", "b"]), {"moderators": "kind"}, "categorical moderators are not supported"),
    (TABLE.assign(x=1.0), {"moderators": "x"}, "is constant"),
    (TABLE.assign(x=[1, 2, np.nan, 3]), {"moderators": "x"}, "1 missing values"),
    (TABLE.assign(x=[1, 2, 3, 4], y=[4, 1, 2, 3], u=[0, 1, 1, 0]), {"moderators": ["x", "y", "u"]},
     "need at least 5 studies"),
    (TABLE.assign(x=[1, 2, 3, 4], y=[2, 4, 6, 8]), {"moderators": ["x", "y"]}, "collinear"),
    (TABLE, {"moderators": "nope"}, "moderator column(s) not found"),
    (TABLE, {"outcomes": TABLE}, "only used with trials"),
    ([1, 2], {}, "expected a DataFrame of per-study effects"),
])
def test_bad_input_raises_one_clear_error(table, kwargs, message):
    with pytest.raises(InvalidInputError) as e:
        pool(table, **kwargs)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


@pytest.mark.filterwarnings("ignore::alliance_ts.errors.AllianceWarning")  # small groups of the tiny trial
def test_bad_trials_input(sites):
    res, clients = sites["site 1"]
    with pytest.raises(InvalidInputError) as e:
        pool({"a": res, "b": "not a result"}, outcomes={"a": clients}, contrast="nope")
    text = str(e.value)
    assert "1 studies are not Detection results" in text and "name the outcome column" in text
    assert "unknown contrast 'nope'" in text and "no outcomes for 1 studies" in text
    with pytest.raises(InvalidInputError, match="trials need the clients' outcomes"):
        pool({"a": res, "b": res}, outcome="outcome")
    with pytest.raises(InvalidInputError, match=r"study 'b', columns: 1 column\(s\) not found in outcomes"):
        pool({"a": res, "b": res}, outcomes={"a": clients, "b": clients.drop(columns="outcome")}, outcome="outcome")
    tiny = at.detect(at.simulate(6, rng=1).scores, scale="wai-sr")
    with pytest.raises(InvalidInputError, match="study 'tiny': contrast 'repaired_vs_unresolved' has no r"):
        pool({"a": res, "tiny": tiny}, outcomes={"a": clients, "tiny": at.simulate(6, rng=1).clients},
             outcome="outcome")


def test_forest_and_funnel_draw_and_save(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = pool(TABLE, method="REML")
    ax = at.plot.forest(res)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["A", "B", "C", "D", "pooled (REML)", "prediction interval"]
    texts = [t.get_text() for t in ax.texts]
    assert any(t.replace(" ", "").startswith(".34[.17,.48]") for t in texts) and texts[0].startswith("r [95% CI]")
    assert ax.get_xlim()[0] <= res.pi_in_metric()[0] and ax.get_xlim()[1] >= res.studies["ci_high"].max()
    ax.figure.savefig(tmp_path / "forest.png")
    ax = at.plot.funnel(res)
    assert ax.get_ylim()[0] > ax.get_ylim()[1] == 0  # inverted: precise studies on top
    assert ax.get_xlabel() == "Fisher's z"
    ax.figure.savefig(tmp_path / "funnel.png")
    fig, axes = plt.subplots(1, 2)
    d = pool(pd.DataFrame({"study": ["a", "b"], "d": [0.2, 0.6], "n": [40, 50]}), effect="d", method="FE")
    assert at.plot.forest(d, ax=axes[0]) is axes[0] and at.plot.funnel(d, ax=axes[1]) is axes[1]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["a", "b", "pooled (FE)"]  # no PI for FE
    fig.savefig(tmp_path / "both.png")
    assert all((tmp_path / f).stat().st_size > 0 for f in ("forest.png", "funnel.png", "both.png"))
    with pytest.raises(InvalidInputError, match="expected the result of alliance_ts.effects.pool"):
        at.plot.forest(TABLE)
    plt.close("all")
