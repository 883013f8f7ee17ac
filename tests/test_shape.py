"""classify_shape: hand-worked fits and labels."""

import math

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at


def shape_of(scores, sessions=None, **kw):
    df = pd.DataFrame({"client": 1, "session": sessions or range(1, len(scores) + 1), "score": scores})
    return at.classify_shape(df, **kw).iloc[0]


def test_linear_growth_slope_by_hand():
    # y = 3, 4, 5.5, 5.5, 7 over t = -2..2: slope = sum(t*y)/sum(t^2)
    #   = (-6 - 4 + 0 + 5.5 + 14)/10 = 0.95
    r = shape_of([3, 4, 5.5, 5.5, 7])
    assert math.isclose(r["slope"], 0.95)
    assert r["shape"] == "linear_growth" and r["p_slope"] < 0.05
    assert math.isclose(r["level"], 5.0)


def test_u_shape_vertex_inside_span():
    # symmetric U around session 4.5: 6, 5, 4, 3.5, 3.5, 4, 5, 6 -> vertex at 4.5
    r = shape_of([6, 5, 4, 3.5, 3.5, 4, 5, 6])
    assert r["shape"] == "U" and r["curvature"] > 0
    assert math.isclose(r["vertex"], 4.5)
    r = shape_of([-v for v in [6, 5, 4, 3.5, 3.5, 4, 5, 6]])
    assert r["shape"] == "inverted_U"


def test_accelerating_growth_is_not_a_u():
    # y = t^2 for sessions 1..6: curvature significant but the vertex (session 0) lies
    # outside the span, so the course is classified by its linear trend.
    r = shape_of([1, 4, 9, 16, 25, 36])
    assert r["curvature"] > 0 and r["vertex"] < 1
    assert r["shape"] == "linear_growth"


def test_constant_and_short_courses():
    r = shape_of([5, 5, 5, 5])
    assert r["shape"] == "stable" and r["slope"] == 0 and r["p_slope"] == 1.0
    r = shape_of([5, 6, 7])  # exact line with 3 points: p_slope 0, no quadratic test
    assert r["shape"] == "linear_growth" and r["p_slope"] == 0.0 and np.isnan(r["p_curvature"])
    r = shape_of([5, 6])
    assert not r["included"] and pd.isna(r["shape"])


def test_noise_is_stable():
    r = shape_of([5, 5.5, 4.75, 5.25, 5, 4.75, 5.25, 5.5, 4.75, 5])
    assert r["shape"] == "stable"


def test_gaps_use_session_numbers():
    # the same line observed at sessions 1, 2, 10: slope 0.5 per session
    r = shape_of([1.0, 1.5, 5.5], sessions=[1, 2, 10])
    assert math.isclose(r["slope"], 0.5)


def test_many_clients_vectorised_equals_one_by_one():
    rng = np.random.default_rng(1)
    rows = []
    for c in range(40):
        n = int(rng.integers(3, 15))
        t = np.arange(n)
        y = rng.normal(0, 1, n) + rng.choice([0, 0.5, -0.5]) * t + rng.choice([0, 0.2]) * (t - n / 2) ** 2
        rows += [(c, int(s) + 1, float(v)) for s, v in zip(t, y)]
    df = pd.DataFrame(rows, columns=["client", "session", "score"])
    whole = at.classify_shape(df)
    parts = pd.concat([at.classify_shape(g) for _, g in df.groupby("client")], ignore_index=True)
    pd.testing.assert_frame_equal(whole, parts, check_categorical=False)


def test_bad_input_raises_once():
    with pytest.raises(ValueError, match="parameter 'alpha'"):
        at.classify_shape(pd.DataFrame({"client": [1], "session": [1], "score": [1.0]}), alpha=2)
