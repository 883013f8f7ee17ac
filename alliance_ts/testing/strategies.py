"""Hypothesis strategies for alliance data.

- :func:`scales`: instrument score ranges with their resolution;
- :func:`trajectories`: one client's scores (flat, ceiling, noisy, with a dip);
- :func:`panels`: long-format tables of several clients with ragged courses
  (including exactly 3 sessions), missed sessions, int or string ids and
  shuffled rows;
- :func:`planted`: a trajectory with one unmistakable planted episode of known
  start, end and status.

Examples
--------
>>> from hypothesis import given, settings
>>> from alliance_ts.testing import strategies as ats
>>> @settings(max_examples=5, database=None)
... @given(ats.panels())
... def test_every_row_is_labelled(df):
...     import alliance_ts as at
...     assert len(at.detect(df, rule="vshape").sessions) == len(df)
>>> test_every_row_is_labelled()
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from hypothesis import strategies as st

__all__ = ["Planted", "ScaleSpec", "panels", "planted", "scales", "trajectories"]


@dataclass(frozen=True)
class ScaleSpec:
    """A score range and its resolution (``step``); ``name`` for ``scale=``."""

    name: str | None
    low: float
    high: float
    step: float

    @property
    def scale(self):
        """The value to pass as ``detect(..., scale=...)``."""
        return self.name if self.name else (self.low, self.high)

    def snap(self, values) -> list[float]:
        """Clip to the range and round to the resolution."""
        v = np.clip(np.asarray(values, dtype=float), self.low, self.high)
        v = self.low + np.round((v - self.low) / self.step) * self.step
        return [float(a) for a in np.clip(v, self.low, self.high)]


_SCALES = [
    ScaleSpec("wai-sr", 12, 60, 1.0),
    ScaleSpec("srs", 0, 40, 1.0),
    ScaleSpec("srs", 0, 40, 0.1),
    ScaleSpec("wai-sr:mean", 1, 5, 1 / 12),
    ScaleSpec("calpas", 1, 7, 1 / 24),
    ScaleSpec(None, 0, 100, 0.5),
]


def scales() -> st.SearchStrategy[ScaleSpec]:
    """Instrument ranges: WAI-SR totals and item means, SRS (whole and tenths), CALPAS, 0-100."""
    return st.sampled_from(_SCALES)


@st.composite
def trajectories(
    draw,
    min_sessions: int = 1,
    max_sessions: int = 30,
    scale: ScaleSpec | None = None,
) -> list[float]:
    """One client's scores on a scale's grid: flat, at the ceiling, noisy, or with a dip.

    Parameters
    ----------
    min_sessions, max_sessions : int
        Range of the number of scores; exactly 3 is drawn often.
    scale : ScaleSpec, optional
        Default: drawn from :func:`scales`.
    """
    spec = scale if scale is not None else draw(scales())
    n = draw(st.one_of(st.just(3), st.integers(min_sessions,
                                               max_sessions)).filter(lambda k: min_sessions <= k <= max_sessions))
    span = spec.high - spec.low
    style = draw(st.sampled_from(["noisy", "ceiling", "flat", "dip", "floor"]))
    if style == "flat":
        level = draw(st.floats(spec.low, spec.high))
        values = [level] * n
    elif style == "ceiling":
        drops = draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.0, 3.0]), min_size=n, max_size=n))
        values = [spec.high - d * spec.step for d in drops]
    elif style == "floor":
        rises = draw(st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.0]), min_size=n, max_size=n))
        values = [spec.low + r * spec.step for r in rises]
    else:
        level = draw(st.floats(spec.low + 0.3 * span, spec.high))
        noise = draw(st.lists(st.floats(-0.08 * span, 0.08 * span), min_size=n, max_size=n))
        values = [level + e for e in noise]
        if style == "dip" and n >= 2:
            at_ = draw(st.integers(1, n - 1))
            depth = draw(st.floats(0.05 * span, 0.6 * span))
            length = draw(st.integers(1, 4))
            for j in range(at_, min(n, at_ + length)):
                values[j] -= depth
    return spec.snap(values)


@st.composite
def panels(
    draw,
    min_clients: int = 1,
    max_clients: int = 6,
    min_sessions: int = 1,
    max_sessions: int = 20,
    scale: ScaleSpec | None = None,
    string_ids: bool | None = None,
    missing: bool = True,
    shuffle: bool = True,
) -> pd.DataFrame:
    """A long table (``client``, ``session``, ``score``) of several clients.

    Courses are ragged (``min_sessions``..``max_sessions`` scores, often
    exactly 3), session numbers may start anywhere from 0 to 3 and have gaps,
    some scores may be missing (NaN rows), ids are ints or strings, and rows
    are shuffled.
    """
    spec = scale if scale is not None else draw(scales())
    n_clients = draw(st.integers(min_clients, max_clients))
    use_str = draw(st.booleans()) if string_ids is None else string_ids
    id_strategy = st.text("abcxyz", min_size=1, max_size=3) if use_str else st.integers(-50, 10_000)
    ids = draw(st.lists(id_strategy, min_size=n_clients, max_size=n_clients, unique=True))
    rows = []
    for cid in ids:
        scores = draw(trajectories(min_sessions, max_sessions, spec))
        session = draw(st.integers(0, 3))
        for k, v in enumerate(scores):
            if k:
                session += draw(st.sampled_from([1, 1, 1, 1, 1, 1, 2, 3]))
            if missing and draw(st.integers(0, 14)) == 0:
                v = float("nan")
            rows.append((cid, session, v))
    df = pd.DataFrame(rows, columns=["client", "session", "score"])
    if shuffle and len(df) > 1:
        perm = draw(st.permutations(range(len(df))))
        df = df.iloc[list(perm)].reset_index(drop=True)
    return df


@dataclass(frozen=True)
class Planted:
    """A trajectory with one planted episode (positions are 0-based, sessions 1-based).

    Attributes
    ----------
    scores : list of float
        The observed scores (sessions 1..n, none missed).
    start : int
        Session of the planted drop.
    end : int or None
        Session of the repair (None: the drop is never repaired).
    status : {"repaired", "unresolved"}
    depth : float
        Size of the drop in score units (at least ``min_depth_sd`` noise SDs).
    noise_sd : float
        SD of the session noise added around the level.
    scale : ScaleSpec
    """

    scores: list[float]
    start: int
    end: int | None
    status: str
    depth: float
    noise_sd: float
    scale: ScaleSpec

    def frame(self, client: object = 1) -> pd.DataFrame:
        """The trajectory as a long table."""
        return pd.DataFrame(
            {"client": client, "session": np.arange(1, len(self.scores) + 1), "score": self.scores}
        )


@st.composite
def planted(
    draw,
    kinds: tuple[str, ...] = ("v", "sustained"),
    min_sessions: int = 10,
    max_sessions: int = 30,
    min_depth_sd: float = 10.0,
    scale: ScaleSpec | None = None,
) -> Planted:
    """A course with one unmistakable planted episode.

    The level sits in the upper part of the scale with Gaussian noise (SD of
    at least one scale step, so rounding cannot erase it); the drop is at least
    ``min_depth_sd`` + 2 noise SDs and 40% of the distance to the bottom of
    the scale deep, after at least 5 undisturbed sessions; a V (``"v"``)
    returns at the next session (to within half a noise SD of the level), a
    sustained drop (``"sustained"``) never returns.
    """
    spec = scale if scale is not None else draw(scales())
    kind = draw(st.sampled_from(list(kinds)))
    n = draw(st.integers(min_sessions, max_sessions))
    span = spec.high - spec.low
    level = draw(st.floats(spec.low + 0.6 * span, spec.high - 0.1 * span))
    depth = max(0.4 * (level - spec.low), (min_depth_sd + 2.0) * spec.step)
    noise_sd = depth / (min_depth_sd + 2.0)  # at least one step of the scale
    start = draw(st.integers(6, n - 4))  # 1-based session of the drop
    # Gaussian session noise (clipped at 2.5 SD) from a drawn seed: shrinking
    # cannot turn it into a noise-free course, which would have no noise SD
    seed = draw(st.integers(0, 2**32 - 1))
    noise = np.clip(np.random.default_rng(seed).normal(0.0, 1.0, n), -2.5, 2.5)
    values = [level + noise_sd * e for e in noise]
    if kind == "v":
        values[start - 1] -= depth
        # an unmistakable repair: the next session is back at the level
        values[start] = level + noise_sd * float(np.clip(noise[start], -0.5, 0.5))
        end, status = start + 1, "repaired"
    else:
        for j in range(start - 1, n):
            values[j] -= depth
        end, status = None, "unresolved"
    return Planted(spec.snap(values), start, end, status, depth, noise_sd, spec)
