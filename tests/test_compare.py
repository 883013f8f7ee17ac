"""Agreement between labelings: kappa, percent agreement and confusion tables by hand."""

import math

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at
from alliance_ts.errors import InvalidInputError
from alliance_ts.result import Detection


def labelled(labels_by_client, patterns, rule):
    """A Detection with the given session labels (sessions 1..n) and client patterns."""
    rows, eps = [], []
    for client, labels in labels_by_client.items():
        for k, lab in enumerate(labels, start=1):
            rows.append({"client": client, "session": k, "score": 1.0, "label": lab})
            starts_here = lab in ("rupture", "unresolved", "repair") and (k == 1 or labels[k - 2] in ("none", "repair"))
            if starts_here:
                eps.append({"client": client, "start": k})
    clients = pd.DataFrame({"client": list(patterns), "included": True, "pattern": list(patterns.values()),
                            "n_ruptures": [0 if p == "no_rupture" else 1 for p in patterns.values()]})
    return Detection(pd.DataFrame(eps, columns=["client", "start"]), pd.DataFrame(rows), clients, rule)


A = labelled({1: ["none", "rupture", "repair", "none"], 2: ["none", "none", "unresolved", "unresolved"]},
             {1: "repaired", 2: "unresolved"}, "rule_a")
B = labelled({1: ["none", "none", "rupture", "repair"], 2: ["none", "none", "none", "none"]},
             {1: "repaired", 2: "no_rupture"}, "rule_b")


def test_session_episode_kappa_by_hand():
    res = at.agreement(A, B)
    # inside an episode?  a: n y y n | n n y y    b: n n y y | n n n n
    # agree on sessions 1, 3 (client 1) and 1, 2 (client 2): 4 of 8
    assert res.n == 8 and res.percent == 0.5
    # a: 4 yes of 8, b: 2 yes of 8 -> p_e = .5 * .25 + .5 * .75 = .5 -> kappa = (.5 - .5) / .5 = 0
    assert res.kappa == pytest.approx(0.0)
    assert res.confusion.loc["yes", "yes"] == 1 and res.confusion.loc["yes", "no"] == 3
    assert res.confusion.loc["no", "yes"] == 1 and res.confusion.loc["no", "no"] == 3
    assert res.names == ("rule_a", "rule_b")


def test_session_labels_and_starts():
    res = at.agreement(A, B, what="label")
    assert res.confusion.shape == (4, 4)
    # same label at client 1 session 1 and client 2 sessions 1, 2 -> 3 of 8
    assert res.percent == 3 / 8
    starts = at.agreement(A, B, what="start")
    # starts: a at (1, 2), (2, 3); b at (1, 3): agree on the 5 other sessions -> 5 of 8
    assert starts.percent == 5 / 8
    assert starts.confusion.loc["yes", "yes"] == 0


def test_client_patterns():
    res = at.agreement(A, B, level="client")
    assert res.n == 2 and res.percent == 0.5
    assert res.confusion.loc["unresolved", "no_rupture"] == 1
    anything = at.agreement(A, B, level="client", what="any")
    # a: yes, yes; b: yes, no -> p_o = .5, p_e = 1 * .5 + 0 * .5 = .5 -> kappa 0
    assert anything.kappa == pytest.approx(0.0)
    perfect = at.agreement(A, A, level="client", what="any")
    # both constant "yes": chance agreement is 1, kappa undefined
    assert perfect.percent == 1.0 and math.isnan(perfect.kappa)


def test_units_in_one_result_only_are_counted_not_compared():
    short = labelled({1: ["none", "rupture", "repair"]}, {1: "repaired"}, "short")
    res = at.agreement(A, short)
    assert (res.n, res.n_only_a, res.n_only_b) == (3, 5, 0)
    row = res.to_frame().iloc[0]
    assert (row["a"], row["b"], row["n_only_a"]) == ("rule_a", "short", 5)


def test_kappa_matches_scikit_learn_on_real_rules():
    from sklearn.metrics import cohen_kappa_score

    sim = at.simulate(150, rng=6)
    g = at.detect(sim.scores, rule="gumz2012", scale="wai-sr")
    s = at.detect(sim.scores, rule="stiles2004", scale="wai-sr")
    res = at.agreement(g, s)
    a = np.where(g.sessions["label"] != "none", "yes", "no")
    b = np.where(s.sessions["label"] != "none", "yes", "no")
    assert res.kappa == pytest.approx(cohen_kappa_score(a, b))
    assert res.percent == pytest.approx((a == b).mean())
    assert res.n == len(sim.scores)


def test_raters_of_a_psq_result():
    sim = at.simulate(60, rng=2, psq=True)
    res = at.detect(sim.psq, rule="psq", rater="rater")
    both = at.agreement(res)
    assert both.names == ("patient", "therapist")
    patient, therapist = res.for_rater("patient"), res.for_rater("therapist")
    assert both.kappa == pytest.approx(at.agreement(patient, therapist).kappa)
    with pytest.raises(InvalidInputError, match="name the two to compare|expected two"):
        at.agreement(res, raters=("patient", "nobody"))
    # a self-report against a score rule, client by client
    score_rule = at.detect(sim.scores, scale="wai-sr")
    vs = at.agreement(patient, score_rule, level="client", what="any")
    assert vs.n == 60 and vs.names == ("psq", "scan")


def test_bad_arguments():
    with pytest.raises(InvalidInputError) as info:
        at.agreement(A, "x", level="client", what="label")
    assert len(info.value.problems) == 2
    with pytest.raises(InvalidInputError, match="rater"):
        at.agreement(A)


def test_labelings_of_different_clients_or_id_types_are_refused():
    def one(client):
        data = pd.DataFrame({"client": [client] * 4, "session": [1, 2, 3, 4], "score": [50.0, 40, 50, 50]})
        return at.detect(data, rule="vshape", pooled_sd=1.0)

    with pytest.raises(InvalidInputError, match="client ids are numbers in a and text in b"):
        at.agreement(one(1), one("1"))
    # client 1 vs client 2: 4 sessions only in a, 4 only in b, nothing to compare
    with pytest.raises(InvalidInputError, match=r"no session is in both labelings \(4 only in a, e.g. "
                                                r"\(client 1, session 1\), .*4 only in b, e.g. \(client 2, session 1\)"):
        at.agreement(one(1), one(2))
    with pytest.raises(InvalidInputError, match=r"no client is in both labelings \(1 only in a, e.g. \(client 1\); "
                                                r"1 only in b, e.g. \(client 2\)\)"):
        at.agreement(one(1), one(2), level="client")
