"""evaluate(): matching, metrics and the documented empty-set conventions."""

import math

import pandas as pd
import pytest

import alliance_ts as at


def eps(rows):
    return pd.DataFrame(rows, columns=["client", "start", "end", "status"])


def test_truth_against_itself_is_perfect():
    sim = at.simulate(300, rng=3)
    m = at.evaluate(sim, sim)
    assert (m.precision, m.recall, m.f1, m.status_accuracy, m.kappa, m.false_alarm_rate) == (1, 1, 1, 1, 1, 0)
    assert m.start_error == 0 and m.repair_error == 0
    assert m["f1"] == m.f1 == 1.0


def test_hand_built_precision_recall():
    truth = eps([(1, 3, 4, "repaired"), (1, 9, None, "unresolved"), (2, 5, 6, "repaired"), (3, 4, 5, "repaired")])
    found = eps([(1, 4, 5, "repaired"), (1, 6, 7, "repaired"), (2, 5, None, "unresolved"), (4, 2, 3, "repaired")])
    m = at.evaluate(found, truth, margin=1, clients=[1, 2, 3, 4, 5])
    # matches: client 1 (3 <-> 4), client 2 (5 <-> 5); detected 4, true 4
    assert (m.n_matched, m.n_detected, m.n_true) == (2, 4, 4)
    assert m.precision == 0.5 and m.recall == 0.5 and m.f1 == 0.5
    # status: client 1 pair repaired/repaired, client 2 repaired/unresolved
    assert m.status_accuracy == 0.5
    # start error |3-4| and |5-5| -> 0.5; repair error only for the repaired/repaired pair: |4-5|
    assert m.start_error == 0.5 and m.repair_error == 1.0
    # clients without truth: 4 and 5; client 4 has a detection -> 1/2
    assert m.n_clients_without_truth == 2 and m.false_alarm_rate == 0.5
    # patterns: truth 1 mixed, 2 repaired, 3 repaired, 4 none, 5 none
    #           found 1 repaired, 2 unresolved, 3 none, 4 repaired, 5 none
    c = m.confusion
    assert c.loc["mixed", "repaired"] == 1 and c.loc["repaired", "unresolved"] == 1
    assert c.loc["repaired", "no_rupture"] == 1 and c.loc["no_rupture", "repaired"] == 1
    assert c.loc["no_rupture", "no_rupture"] == 1 and c.to_numpy().sum() == 5
    # Cohen's kappa by hand: observed agreement 1/5; expected from the margins
    # truth (no 2, rep 2, unr 0, mixed 1), found (no 2, rep 2, unr 1, mixed 0):
    # pe = (2*2 + 2*2 + 0*1 + 1*0)/25 = 8/25; kappa = (0.2 - 0.32)/(1 - 0.32)
    assert math.isclose(m.kappa, (0.2 - 0.32) / 0.68)


def test_matching_is_optimal_not_greedy():
    # a greedy nearest-first pairing would pair detection 5 with truth 5 (distance 0)
    # and then leave truths 4 and 6 unmatched with detection 7 out of reach of 4.
    truth = eps([(1, 4, None, "unresolved"), (1, 6, None, "unresolved")])
    found = eps([(1, 5, None, "unresolved"), (1, 7, None, "unresolved")])
    m = at.evaluate(found, truth, margin=1)
    # optimal: 5 <-> 4 and 7 <-> 6: two matches
    assert m.n_matched == 2 and m.f1 == 1.0
    truth = eps([(1, 4, None, "unresolved"), (1, 5, None, "unresolved")])
    found = eps([(1, 5, None, "unresolved"), (1, 6, None, "unresolved")])
    m = at.evaluate(found, truth, margin=1)
    assert m.n_matched == 2  # 5<->4, 6<->5 (greedy 5<->5 would strand 4 and 6)
    assert m.start_error == 1.0


def test_empty_set_conventions():
    empty = eps([])
    m = at.evaluate(empty, empty, clients=[1, 2])
    assert (m.precision, m.recall, m.f1, m.kappa, m.false_alarm_rate) == (1.0, 1.0, 1.0, 1.0, 0.0)
    assert math.isnan(m.status_accuracy) and math.isnan(m.repair_error)
    truth = eps([(1, 3, 4, "repaired")])
    m = at.evaluate(empty, truth, clients=[1])
    assert (m.precision, m.recall, m.f1) == (1.0, 0.0, 0.0)
    assert math.isnan(m.false_alarm_rate)  # every client has a true episode
    m = at.evaluate(truth, empty, clients=[1])
    assert (m.precision, m.recall, m.f1, m.false_alarm_rate) == (0.0, 1.0, 0.0, 1.0)


def test_detection_and_simulation_inputs_and_errors():
    sim = at.simulate(100, rng=2)
    res = at.detect(sim.scores)
    m = at.evaluate(res, sim)
    assert m.n_clients == 100 and 0 <= m.f1 <= 1
    assert set(m.to_series().index) >= {"precision", "recall", "f1", "status_accuracy", "kappa", "false_alarm_rate"}
    with pytest.raises(KeyError, match="not a metric"):
        m["accuracy"]
    with pytest.raises(ValueError, match="missing column"):
        at.evaluate(pd.DataFrame({"client": [1]}), sim)
    with pytest.raises(ValueError, match="margin"):
        at.evaluate(res, sim, margin=-1)
