"""Whole-course shape: stable, linear growth or decline, U or inverted U.

A client-level pattern (Kivlighan & Shaughnessy, 2000), distinct from local
rupture-repair episodes: Stiles et al. (2004) contrast a treatment-long U with
local V-shaped sequences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._lazy import stats
from .errors import InvalidInputError, Problem
from .result import _categorical
from .validation import check_number, read_panel

__all__ = ["classify_shape", "SHAPES"]

SHAPES = ("stable", "linear_growth", "linear_decline", "U", "inverted_U")

KIVLIGHAN_2000 = (
    "Kivlighan, D. M., Jr., & Shaughnessy, P. (2000). Patterns of working alliance "
    "development: A typology of client's working alliance ratings. Journal of "
    "Counseling Psychology, 47(3), 362-371."
)


def classify_shape(
    data: Any,
    *,
    client: str = "client",
    session: str = "session",
    score: str = "score",
    scale: Any = None,
    min_sessions: int = 3,
    alpha: float = 0.05,
) -> pd.DataFrame:
    r"""Classify each client's whole course of alliance scores.

    Parameters
    ----------
    data, client, session, score, scale, min_sessions
        As for :func:`alliance_ts.detect`.
    alpha : float, default 0.05
        Two-sided significance level of the slope and curvature tests.

    Returns
    -------
    pandas.DataFrame
        One row per input client, sorted by client id, with columns

        - ``client``, ``n_sessions`` (observed scores), ``included``,
          ``reason``;
        - ``shape``: ``"stable"``, ``"linear_growth"``, ``"linear_decline"``,
          ``"U"`` or ``"inverted_U"`` (missing when not included);
        - ``level``: the client's mean score;
        - ``slope``, ``p_slope``: the linear fit's slope (score units per
          session) and its two-sided p value (df = n - 2);
        - ``linear``, ``curvature``, ``p_curvature``: the quadratic fit's
          linear and quadratic coefficients (session numbers centred at the
          client's mean session) and the p value of the quadratic one
          (df = n - 3; missing with fewer than 4 scores);
        - ``vertex``: session number of the quadratic's turning point
          (missing when the curvature is zero).

    Notes
    -----
    For each client, with :math:`t` = session number minus the client's mean
    session number, ordinary least squares fits
    :math:`y = a + b t` and :math:`y = c_0 + c_1 t + c_2 t^2` to the observed
    scores. The shape is

    1. ``"U"`` (:math:`c_2 > 0`) or ``"inverted_U"`` (:math:`c_2 < 0`) when the
       client has at least 4 scores, :math:`c_2` differs from 0 at ``alpha``
       and the turning point lies strictly inside the observed session span
       (a curve that only bends at one end is not a U);
    2. otherwise ``"linear_growth"`` / ``"linear_decline"`` when :math:`b`
       differs from 0 at ``alpha``;
    3. otherwise ``"stable"``.

    Coefficients smaller than :math:`10^{-9}` of the score level over the
    session span count as exactly zero (exact fits, e.g. constant scores,
    would otherwise have undefined p values).

    Kivlighan and Shaughnessy (2000) found stable, linear-growth and
    quadratic (U-shaped) alliance courses; the label set follows them, with
    decline and inverted U added for symmetry. The significance-based
    decision rule and the interior-vertex condition are this library's
    choices (they clustered growth curves instead).

    References
    ----------
    .. [1] Kivlighan & Shaughnessy (2000), see ``KIVLIGHAN_2000``.

    Examples
    --------
    >>> import pandas as pd, alliance_ts as at
    >>> df = pd.DataFrame({"client": 1, "session": range(1, 9),
    ...                    "score": [6, 5, 4, 3.5, 3.5, 4, 5, 6]})
    >>> at.classify_shape(df)[["client", "shape"]]
       client shape
    0       1     U
    """
    problems: list[Problem] = []
    check_number(problems, "min_sessions", min_sessions, low=1, integer=True)
    check_number(problems, "alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    panel, data_problems = read_panel(data, client=client, session=session, score=score, scale=scale)
    problems += data_problems
    if problems:
        raise InvalidInputError(problems, "alliance_ts.classify_shape()")
    if panel is None:  # pragma: no cover - problems were raised above
        raise RuntimeError("validation returned no panel without reporting a problem")

    n_clients = panel.n_clients
    nobs = panel.n_obs
    codes = np.repeat(np.arange(n_clients), nobs)
    y = panel.obs_values
    s = panel.obs_sessions.astype(float)

    def per_client(w):
        return np.bincount(codes, weights=w, minlength=n_clients)

    with np.errstate(invalid="ignore", divide="ignore"):
        n = nobs.astype(float)
        s_mean = per_client(s) / n
        t = s - s_mean[codes]
        y_mean = per_client(y) / n
        st2, st3, st4 = per_client(t**2), per_client(t**3), per_client(t**4)
        sty, st2y = per_client(t * y), per_client(t**2 * y)
        first = panel.obs_offsets[:-1]
        last = panel.obs_offsets[1:] - 1
        if t.size:
            has = nobs > 0
            t_min = np.where(has, t[np.clip(first, 0, t.size - 1)], np.nan)
            t_max = np.where(has, t[np.clip(last, 0, t.size - 1)], np.nan)
        else:
            t_min = t_max = np.full(n_clients, np.nan)
        t_range = t_max - t_min
        y_dev = y - y_mean[codes]
        y_scale = np.maximum(np.sqrt(per_client(y_dev**2) / np.maximum(n, 1)), np.abs(y_mean))
        y_scale = np.maximum(y_scale, 1.0)

        # linear fit
        slope = sty / st2
        rss_lin = per_client((y_dev - slope[codes] * t) ** 2)
        se_slope = np.sqrt(rss_lin / (n - 2) / st2)
        slope_zero = np.abs(slope) * t_range <= 1e-9 * y_scale
        slope = np.where(slope_zero, 0.0, slope)
        p_slope = _p_value(slope, se_slope, n - 2, slope_zero)

        # quadratic fit: normal equations with centred t (sum t = 0)
        mat = np.zeros((n_clients, 3, 3))
        mat[:, 0, 0] = n
        mat[:, 0, 2] = mat[:, 2, 0] = st2
        mat[:, 1, 1] = st2
        mat[:, 1, 2] = mat[:, 2, 1] = st3
        mat[:, 2, 2] = st4
        rhs = np.stack([y_mean * n, sty, st2y], axis=1)
        quad_ok = nobs >= 4
        coef = np.full((n_clients, 3), np.nan)
        inv22 = np.full(n_clients, np.nan)
        if quad_ok.any():
            inv = np.linalg.inv(mat[quad_ok])
            coef[quad_ok] = np.einsum("kij,kj->ki", inv, rhs[quad_ok])
            inv22[quad_ok] = inv[:, 2, 2]
        c0, c1, c2 = coef[:, 0], coef[:, 1], coef[:, 2]
        fitted = c0[codes] + c1[codes] * t + c2[codes] * t**2
        rss_q = per_client((y - fitted) ** 2)
        se_c2 = np.sqrt(rss_q / (n - 3) * inv22)
        curv_zero = quad_ok & (np.abs(c2) * t_range**2 <= 1e-9 * y_scale)
        c2 = np.where(curv_zero, 0.0, c2)
        p_curv = np.where(quad_ok, _p_value(c2, se_c2, n - 3, curv_zero), np.nan)
        t_vertex = np.where(c2 != 0, -c1 / (2 * c2), np.nan)
        vertex = t_vertex + s_mean

    included = nobs >= int(min_sessions)
    interior = (t_vertex > t_min) & (t_vertex < t_max)
    is_u = quad_ok & (p_curv < alpha) & interior
    shape = np.where(
        is_u,
        np.where(c2 > 0, 3, 4),
        np.where(p_slope < alpha, np.where(slope > 0, 1, 2), 0),
    )
    shape = np.where(included, shape, -1).astype(np.int8)
    reason = np.where(included, "", [f"fewer than {min_sessions} observed scores ({k})" for k in nobs])

    def masked(a):
        return np.where(included, a, np.nan)

    return pd.DataFrame(
        {
            "client": panel.client_ids,
            "n_sessions": nobs.astype(np.int64),
            "included": included,
            "reason": reason.astype(str),
            "shape": _categorical(shape, list(SHAPES)),
            "level": masked(y_mean),
            "slope": masked(slope),
            "p_slope": masked(p_slope),
            "linear": masked(c1),
            "curvature": masked(c2),
            "p_curvature": masked(p_curv),
            "vertex": masked(vertex),
        }
    )


def _p_value(coef: np.ndarray, se: np.ndarray, df: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """Two-sided t-test p value; exact fits give 0 (non-zero coef) or 1 (zero)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        tval = np.abs(coef) / se
        p = 2.0 * stats.t.sf(tval, np.where(df > 0, df, np.nan))
    exact = (se == 0) | ~np.isfinite(se)
    p = np.where(exact & (df > 0), np.where(zero, 1.0, 0.0), p)
    return np.where(zero & (df > 0), 1.0, p)
