"""Effect sizes: conversions, Fisher CIs and outcome contrasts worked by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_ts as at
from alliance_ts.effects import d_to_r, fisher_ci, outcome_association, r_to_d
from alliance_ts.errors import InvalidInputError
from alliance_ts.result import Detection


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
