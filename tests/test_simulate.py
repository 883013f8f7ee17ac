"""The simulator: determinism, realism and a truth consistent with the scores."""

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at
from alliance_ts.errors import InvalidInputError


def test_same_seed_same_trial_whatever_the_number_of_clients():
    big = at.simulate(60, rng=7, p_missing=0.1, p_dropout=0.2)
    small = at.simulate(15, rng=7, p_missing=0.1, p_dropout=0.2)
    pd.testing.assert_frame_equal(small.scores, big.scores[big.scores["client"] <= 15].reset_index(drop=True))
    pd.testing.assert_frame_equal(small.truth, big.truth[big.truth["client"] <= 15].reset_index(drop=True))
    again = at.simulate(60, rng=7, p_missing=0.1, p_dropout=0.2)
    pd.testing.assert_frame_equal(big.scores, again.scores)
    other = at.simulate(60, rng=8, p_missing=0.1, p_dropout=0.2)
    assert not big.scores.equals(other.scores)


def test_generator_argument_is_used_once():
    g = np.random.default_rng(3)
    a = at.simulate(5, rng=g)
    b = at.simulate(5, rng=g)
    assert not a.scores.equals(b.scores)


@pytest.mark.parametrize(
    "scale, low, high, step",
    [("wai-sr", 12, 60, 1.0), ("srs", 0, 40, 1.0), ("calpas", 1, 7, 1 / 24), ((0, 100), 0, 100, 0.01)],
)
def test_scores_respect_the_instrument(scale, low, high, step):
    sim = at.simulate(200, rng=1, scale=scale, n_sessions=(3, 30))
    s = sim.scores["score"]
    assert s.between(low, high).all()
    assert np.allclose(np.round(s / step) * step, s)
    n = sim.scores.groupby("client").size()
    assert n.min() >= 3 and n.max() <= 30


def test_ceiling_clipping():
    sim = at.simulate(300, rng=2, scale="srs", baseline=0.95, baseline_sd=0.02, p_episode=0)
    assert (sim.scores["score"] == 40).mean() > 0.3


def test_truth_is_consistent_with_observed_sessions():
    sim = at.simulate(400, rng=4, p_missing=0.2, p_dropout=0.3, n_sessions=(3, 40))
    obs = set(map(tuple, sim.scores[["client", "session"]].to_numpy()))
    t = sim.truth
    for row in t.itertuples():
        assert (row.client, row.start) in obs and (row.client, row.trough) in obs
        assert row.start <= row.trough
        if row.status == "repaired":
            assert (row.client, int(row.end)) in obs and row.end > row.trough
        else:
            assert pd.isna(row.end)
    assert (t["start"] >= 2).all()  # a pre-rupture session always exists
    assert set(t["kind"]) <= {"v", "multi", "gradual", "sustained"}
    assert t.loc[t["kind"] == "sustained", "status"].eq("unresolved").all()
    c = sim.clients.set_index("client")
    assert (c["n_episodes"] == t.groupby("client").size().reindex(c.index, fill_value=0)).all()
    assert set(c["pattern"]) <= {"no_rupture", "repaired", "unresolved", "mixed"}


def test_planted_depth_in_noise_sd_units_and_v_shape():
    sim = at.simulate(200, rng=9, kinds={"v": 1}, depth=(5, 5), p_episode=1.0, ar=0.0)
    t = sim.truth
    assert np.allclose(t["depth_sd"], 5.0)
    assert np.allclose(t["depth"], 5.0 * sim.clients.set_index("client").loc[t["client"], "noise_sd"].to_numpy())
    assert (t["end"] == t["start"] + 1).all() and (t["trough"] == t["start"]).all()


def test_missing_as_nan_rows():
    sim = at.simulate(50, rng=1, p_missing=0.3, missing="nan")
    assert sim.scores["score"].isna().any()
    # the first session is never missed
    assert sim.scores.groupby("client")["score"].first().notna().all()


def test_no_episodes_when_p_episode_is_zero():
    sim = at.simulate(100, rng=1, p_episode=0.0)
    assert sim.truth.empty and (sim.clients["pattern"] == "no_rupture").all()


def test_invalid_arguments_are_listed_together():
    with pytest.raises(ValueError) as info:
        at.simulate(-1, n_sessions=(2, 5), ar=1.0, kinds={"x": 1}, scale="nope", missing="drop")
    text = str(info.value)
    for bit in ("n_clients", "n_sessions", "'ar'", "'kinds'", "'scale'", "'missing'"):
        assert bit in text
    with pytest.raises(ValueError, match="rng"):
        at.simulate(3, rng="seed")


def test_questionnaires_and_outcomes_never_change_the_scores():
    plain = at.simulate(80, rng=31, p_missing=0.2, missing="nan")
    with_psq = at.simulate(80, rng=31, p_missing=0.2, missing="nan", psq=True)
    pd.testing.assert_frame_equal(plain.scores, with_psq.scores)
    pd.testing.assert_frame_equal(plain.clients, with_psq.clients)
    assert plain.psq is None
    q = with_psq.psq
    observed = with_psq.scores.dropna()
    # one row per observed session and rater
    assert len(q) == 2 * len(observed)
    assert set(q["rater"]) == {"patient", "therapist"}
    for item in ("rupture", "withdrawal"):
        assert q[item].between(1, 5).all()
    reported = q[["rupture", "withdrawal"]].max(axis=1) >= 3
    # "addressed" and "resolved" are answered exactly when a problem is reported
    assert (q["resolved"].notna() == reported).all() and (q["addressed"].notna() == reported).all()


def test_outcome_means_are_checked():
    with pytest.raises(InvalidInputError, match="outcome_means"):
        at.simulate(5, rng=1, outcome_means={"repaired": 1.0})
    sim = at.simulate(5, rng=1, outcome_means={"no_rupture": 10.0, "repaired": 10.0, "unresolved": 10.0, "mixed": 10.0})
    assert sim.clients["outcome"].between(5, 15).all()
