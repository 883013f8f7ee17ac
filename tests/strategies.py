"""Hypothesis strategies for long-format alliance panels used by the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import strategies as st


@st.composite
def trajectories(draw, min_size=1, max_size=25, low=1.0, high=7.0, step=0.25):
    """Scores on a grid (item means in quarter points by default)."""
    n = draw(st.integers(min_size, max_size))
    units = int(round((high - low) / step))
    style = draw(st.sampled_from(["free", "ceiling", "flat", "dip"]))
    if style == "flat":
        level = draw(st.integers(0, units))
        vals = [level] * n
    elif style == "ceiling":
        vals = draw(st.lists(st.sampled_from([units, units, units, units - 1, units - 4]), min_size=n, max_size=n))
    elif style == "dip" and n >= 3:
        level = draw(st.integers(units // 2, units))
        vals = [level + draw(st.integers(-1, 0)) for _ in range(n)]
        at = draw(st.integers(1, n - 1))
        depth = draw(st.integers(1, level))
        length = draw(st.integers(1, 4))
        for j in range(at, min(n, at + length)):
            vals[j] = max(0, vals[j] - depth)
    else:
        vals = draw(st.lists(st.integers(0, units), min_size=n, max_size=n))
    return [low + v * step for v in vals]


@st.composite
def panels(draw, max_clients=6, max_sessions=20, string_ids=None, with_nan=True):
    """A long DataFrame with ragged courses, missed sessions and any row order."""
    n_clients = draw(st.integers(1, max_clients))
    use_str = draw(st.booleans()) if string_ids is None else string_ids
    ids = draw(
        st.lists(
            st.text("abcxyz", min_size=1, max_size=3) if use_str else st.integers(-50, 10_000),
            min_size=n_clients,
            max_size=n_clients,
            unique=True,
        )
    )
    rows = []
    for cid in ids:
        scores = draw(trajectories(min_size=1, max_size=max_sessions))
        first = draw(st.integers(0, 3))
        gaps = draw(st.lists(st.integers(1, 3), min_size=len(scores), max_size=len(scores)))
        sessions = list(np.cumsum([first] + [g if draw(st.integers(0, 9)) == 0 else 1 for g in gaps[1:]]))
        for s, v in zip(sessions, scores):
            if with_nan and draw(st.integers(0, 14)) == 0:
                v = float("nan")
            rows.append((cid, int(s), v))
    df = pd.DataFrame(rows, columns=["client", "session", "score"])
    perm = draw(st.permutations(range(len(df))))
    return df.iloc[list(perm)].reset_index(drop=True)
