"""Operating curves, the oracle and the scenarios they brought (alliance_ts.benchmark)."""

import math

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at
from alliance_ts.benchmark import (
    ORACLE,
    ORACLE_PRIOR_DF,
    SCENARIOS,
    Sweep,
    at_default,
    default_sweep,
    matched,
    operating_markdown,
    operating_rules,
    oracle_detect,
    run_operating,
)
from alliance_ts.errors import UnknownRuleError
from alliance_ts.noise import trimmed_scale


def curve(points, seeds=(1,)):
    """A run_operating-like table of one rule in one scenario: (value, fa, f1, recall) per point and seed."""
    rows = []
    for seed in seeds:
        for value, fa, f1, recall in points:
            rows.append({"scenario": "s", "seed": seed, "rule": "r", "param": "k", "value": value, "default": False,
                         "fa": fa, "f1": f1, "recall": recall, "precision": 0.9})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# matching at a false-alarm rate


def test_matched_interpolates_linearly_in_the_false_alarm_rate():
    df = curve([(3.0, 0.02, 0.5, 0.4), (2.0, 0.08, 0.8, 0.7), (1.0, 0.30, 0.6, 0.9)])
    out = matched(df, targets=[0.05]).iloc[0]
    assert out["reached"]
    # F1: 0.5 + (0.05 - 0.02) / (0.08 - 0.02) * (0.8 - 0.5) = 0.5 + 0.5 * 0.3 = 0.65
    assert out["f1"] == pytest.approx(0.5 + (0.05 - 0.02) / (0.08 - 0.02) * 0.3)
    assert out["f1"] == pytest.approx(0.65)
    # recall: 0.4 + 0.5 * (0.7 - 0.4) = 0.55; the parameter: 3 + 0.5 * (2 - 3) = 2.5
    assert out["recall"] == pytest.approx(0.55)
    assert out["value"] == pytest.approx(2.5)
    # between the second and third point: 0.8 + (0.1 - 0.08) / (0.30 - 0.08) * (0.6 - 0.8) = 0.8 - 0.2 / 11
    assert matched(df, targets=[0.1]).iloc[0]["f1"] == pytest.approx(0.8 - 0.2 / 11)


def test_matched_averages_seeds_first_and_leaves_out_the_default_setting():
    df = curve([(3.0, 0.02, 0.5, 0.4), (2.0, 0.08, 0.8, 0.7)], seeds=(1, 2))
    # seed 2 of the first point: fa 0.04 and F1 0.3, so the mean point is (0.03, 0.4)
    df.loc[(df["seed"] == 2) & (df["value"] == 3.0), ["fa", "f1"]] = [0.04, 0.3]
    default = curve([(np.nan, 0.05, 0.99, 0.99)]).assign(default=True)
    out = matched(pd.concat([df, default], ignore_index=True), targets=[0.05]).iloc[0]
    # 0.4 + (0.05 - 0.03) / (0.08 - 0.03) * (0.8 - 0.4) = 0.4 + 0.4 * 0.4 = 0.56
    assert out["f1"] == pytest.approx(0.56)
    assert at_default(pd.concat([df, default]))["f1"].tolist() == [0.99]


def test_points_with_the_same_rate_keep_the_best_f1():
    df = curve([(4.0, 0.0, 0.2, 0.1), (3.0, 0.0, 0.6, 0.5), (2.0, 0.10, 0.8, 0.7)])
    out = matched(df, targets=[0.0, 0.05])
    # at 0: the better of the two points with no false alarm; at 5%: 0.6 + 0.5 * (0.8 - 0.6) = 0.7
    assert out["f1"].tolist() == pytest.approx([0.6, 0.7])


def test_a_curve_that_does_not_span_the_target_does_not_reach_it():
    df = curve([(3.0, 0.02, 0.5, 0.4), (2.0, 0.08, 0.8, 0.7)])
    out = matched(df, targets=[0.01, 0.02, 0.08, 0.1]).set_index("target")
    assert out["reached"].tolist() == [False, True, True, False]
    assert math.isnan(out.loc[0.01, "f1"]) and math.isnan(out.loc[0.1, "recall"])
    assert out.loc[0.02, "f1"] == 0.5 and out.loc[0.08, "f1"] == 0.8  # the ends are reached exactly
    # a rule that never flags a rupture-free client reaches no positive target
    flat = matched(curve([(2.0, 0.0, 1.0, 1.0), (1.0, 0.0, 1.0, 1.0)]), targets=[0.05])
    assert not flat["reached"].iloc[0]


def test_the_report_shows_not_reached_as_a_dash():
    df = pd.concat([curve([(3.0, 0.02, 0.5, 0.4), (2.0, 0.08, 0.8, 0.7)]).assign(scenario="clear_v"),
                    curve([(np.nan, 0.03, 0.6, 0.5)]).assign(scenario="clear_v", default=True)])
    df["params"] = ""
    text = operating_markdown(df, [1], 400, 1.0)
    f1_at_1 = text.split("## F1 at 1% false alarms")[1].split("##")[0]
    assert "| clear_v | - |" in f1_at_1
    f1_at_5 = text.split("## F1 at 5% false alarms")[1].split("##")[0]
    assert "| clear_v | **0.65** |" in f1_at_5
    assert "0.60 (3.0%)" in text


# --------------------------------------------------------------------------
# the oracle


def test_the_oracle_gets_each_clients_true_noise_sd():
    sim = at.simulate(60, rng=4, ar=0.5, n_sessions=(6, 20))
    res = oracle_detect(sim)
    clients = res.clients.set_index("client")
    assert clients["included"].all()
    # the rule sees noise SD sqrt(1 - ar) in units of each client's true SD: the true SD in score units
    seen = clients["noise"] * sim.clients.set_index("client")["noise_sd"]
    expected = np.sqrt(1 - 0.5) * sim.clients.set_index("client")["noise_sd"]
    np.testing.assert_allclose(seen, expected, rtol=1e-7)
    assert res.params["prior_df"] == ORACLE_PRIOR_DF


def test_the_oracle_is_changepoint_on_the_raw_scores_with_the_true_noise():
    sim = at.simulate(12, rng=2, kinds={"v": 1}, depth=(4, 6))
    res = oracle_detect(sim)
    cols = ["client", "start", "end", "status"]
    for client, sd in sim.clients.set_index("client")["noise_sd"].items():
        one = at.detect(sim.scores[sim.scores["client"] == client], rule="changepoint", scale="wai-sr",
                        noise=sd * math.sqrt(1 - 0.3), prior_df=ORACLE_PRIOR_DF)
        mine = res.episodes.loc[res.episodes["client"] == client, cols].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, one.episodes[cols].reset_index(drop=True), check_dtype=False)
    # episodes are in session numbers, so evaluate() scores the oracle like any rule
    assert at.evaluate(res, sim).recall > 0.5


def test_the_oracle_gets_the_true_sd_also_for_constant_courses():
    sim = at.simulate(80, rng=1, **SCENARIOS["ceiling_dip"].params)
    res = oracle_detect(sim)
    constant = sim.scores.groupby("client")["score"].nunique() == 1
    assert constant.sum() > 20  # about half the clients have no dip, and most of those are constant
    clients = res.clients.set_index("client")
    assert clients.loc[constant[constant].index, "included"].all()
    np.testing.assert_allclose(clients["noise"], math.sqrt(0.7), rtol=1e-7)


def test_the_oracle_sets_its_noise_itself():
    with pytest.raises(ValueError, match="the oracle sets noise"):
        oracle_detect(at.simulate(5, rng=1), noise=1.0)


# --------------------------------------------------------------------------
# the new scenarios


def test_ceiling_dip_courses_sit_at_40_with_clear_dips():
    sim = at.simulate(200, rng=1, **SCENARIOS["ceiling_dip"].params)
    scores, truth = sim.scores, sim.truth
    free = sim.clients.loc[sim.clients["pattern"] == "no_rupture", "client"]
    at_40 = scores[scores["client"].isin(free)].groupby("client")["score"].agg(lambda s: (s == 40).all())
    assert len(free) > 60 and at_40.mean() > 0.8  # most rupture-free courses are 40 at every session
    assert set(truth["kind"]) == {"v"} and len(truth) > 60
    trough = truth.merge(scores, left_on=["client", "trough"], right_on=["client", "session"])["score"]
    assert (trough <= 40 - 5).all() and trough.median() <= 40 - 10  # every dip 5+ points, typically 10+
    ruptured = scores.merge(truth[["client", "trough"]], on="client")
    others = ruptured.loc[ruptured["session"] != ruptured["trough"], "score"]
    assert (others == 40).mean() > 0.95  # 40, ..., 40, dip, 40, ...


def test_a_client_only_noise_estimate_is_zero_at_the_ceiling():
    # the issue's example: the client's own lag-1 differences are all 0 but the dip's two
    x = np.array([40.0] * 9 + [20.0] + [40.0] * 5)
    sd, _, _ = trimmed_scale(np.diff(x))
    assert sd == 0.0


def test_long_dip_has_few_clients_with_thousands_of_sessions():
    scenario = SCENARIOS["long_dip"]
    assert scenario.clients(400) == 40 and scenario.clients(10) == 10
    assert SCENARIOS["mixed"].clients(400) == 400
    sim = at.simulate(4, rng=1, **scenario.params)
    assert sim.clients["n_sessions"].between(2000, 3000).all()
    assert set(sim.truth["kind"]) <= {"v"}
    assert sim.truth["depth_sd"].between(5.5, 6.5).all()
    assert (sim.truth["end"] - sim.truth["start"] == 1).all()  # one-session dips


# --------------------------------------------------------------------------
# the curves


def test_run_operating_sweeps_each_rule_and_adds_its_default():
    grids = {"vshape": ("k", [2.0, 4.0]), ORACLE: Sweep("penalty_scale", (1.0, 4.0), linked={"min_drop": (3.0, 0.5)})}
    loss_sweep = Sweep("cutoff", (5.0,), fixed={"reliability": None, "pct": None})
    df = run_operating(["clear_v"], ["vshape", "sudden_loss", ORACLE], seeds=[1], n_clients=40,
                       grids={**grids, "sudden_loss": loss_sweep})
    assert list(df.columns) == ["scenario", "seed", "rule", "param", "value", "default", "params", "fa", "f1",
                                "recall", "precision", "n_true", "n_detected", "seconds"]
    assert df.groupby("rule", sort=False).size().to_dict() == {"vshape": 3, "sudden_loss": 2, ORACLE: 3}
    vshape = df[df["rule"] == "vshape"]
    assert vshape["value"].tolist() == [2.0, 2.0, 4.0] and vshape["default"].tolist() == [True, False, False]
    oracle = df[(df["rule"] == ORACLE) & ~df["default"]]
    assert oracle["params"].tolist() == ["true noise SD, penalty_scale=1.0, min_drop=3.0",
                                         "true noise SD, penalty_scale=4.0, min_drop=6.0"]
    # sudden_loss: the benchmark's setting is the default point, the curve sets the cut-off itself
    loss = df[df["rule"] == "sudden_loss"].set_index("default")
    assert loss.loc[True, "params"] == "reliability=0.9" and loss.loc[True, "value"] > 0
    assert loss.loc[False, "params"] == "reliability=None, pct=None, cutoff=5.0"
    # the default vshape setting is k = 2: the same point as the curve's first
    assert vshape.iloc[0][["fa", "f1"]].tolist() == vshape.iloc[1][["fa", "f1"]].tolist()
    assert df["fa"].between(0, 1).all()


def test_the_default_rules_are_every_score_rule_and_the_oracle():
    table = at.list_rules()
    assert operating_rules() == [*table.loc[table["input"] == "scores", "name"], ORACLE]
    for name in operating_rules():
        assert len(default_sweep(name).values) >= 8


def test_a_rule_registered_later_gets_a_curve_from_its_strictness():
    @at.register_rule("test_alpha_rule", summary="a test rule", reference="tests", strictness=("alpha", "down"))
    def alpha_rule(scores, *, alpha=0.05):
        return []

    @at.register_rule("test_no_strictness", summary="a test rule", reference="tests")
    def plain_rule(scores, *, size=10.0):
        return []

    try:
        sweep = default_sweep("test_alpha_rule")
        assert sweep.param == "alpha" and len(sweep.values) == 12
        assert sweep.values[0] == 0.002 and sweep.values[-1] == 0.3
        assert "test_alpha_rule" in operating_rules()
        with pytest.raises(ValueError, match="declares no strictness"):
            run_operating(["clear_v"], ["test_no_strictness"], seeds=[1], n_clients=5)
        df = run_operating(["clear_v"], ["test_no_strictness"], seeds=[1], n_clients=10,
                           grids={"test_no_strictness": ("size", [5.0, 10.0])})
        assert df["param"].unique().tolist() == ["size"] and (df["fa"] == 0).all()
    finally:
        at.unregister_rule("test_alpha_rule")
        at.unregister_rule("test_no_strictness")
    with pytest.raises(UnknownRuleError):
        default_sweep("no_such_rule")
