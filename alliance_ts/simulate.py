"""Synthetic alliance trials with planted ruptures: the ground truth for benchmarks.

:func:`simulate` draws each client's course (baseline level, growth shape,
autocorrelated session noise), plants rupture episodes of known kind, start,
repair and depth, clips and rounds the scores like the chosen instrument, and
then removes missed sessions and drops out clients. It returns the observed
scores *and* the truth as the observed data show it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError, Problem
from .scales import ScoreRange, get_scale, resolve_scale
from .validation import check_number

__all__ = ["EPISODE_KINDS", "COURSES", "OUTCOME_MEANS", "PSQ_RATERS", "Simulation", "simulate"]

#: Planted episode kinds (see :func:`simulate`).
EPISODE_KINDS = ("v", "multi", "gradual", "sustained", "several")
#: Whole-course shapes.
COURSES = ("flat", "linear", "log", "u")
#: Default mean outcome by true pattern (in units of the outcome's within-group SD).
OUTCOME_MEANS = {"no_rupture": 0.0, "repaired": 0.5, "unresolved": -0.12, "mixed": 0.19}
#: PSQ raters and their chance of reporting a planted rupture / a rupture that is not there.
PSQ_RATERS = {"patient": (0.8, 0.05), "therapist": (0.6, 0.08)}
#: Rupture types of planted episodes (drawn with equal chance per episode).
RUPTURE_TYPES = ("confrontation", "withdrawal")
#: Simulated observer coding (this library's choices): segments per session, the coders, the chance
#: that a coder marks a marker or strategy that is there, the rate of marks that are not (per
#: segment), and the chance that a coder's rating is one point off.
SEGMENTS = 10
CODERS = ("A", "B")
CODER_SENSITIVITY, CODER_FALSE_RATE, RATING_NOISE = 0.85, 0.005, 0.3


@dataclass(frozen=True, eq=False)
class Simulation:
    """A simulated trial.

    Attributes
    ----------
    scores : pandas.DataFrame
        Long format: ``client`` (int, 1..n), ``session``, ``score``; one row
        per observed session (missed sessions absent, or NaN rows with
        ``missing="nan"``).
    truth : pandas.DataFrame
        One row per planted episode that the observed sessions show:
        ``client``, ``episode``, ``kind``, ``start`` (first observed session of
        the rupture), ``trough`` (observed session with the deepest planted
        drop), ``end`` (first observed session at or after the planted repair;
        ``<NA>`` when unresolved, including repairs lost to dropout),
        ``status``, ``depth`` (planted drop in score units), ``depth_sd``
        (in units of the client's noise SD) and ``type`` (``"confrontation"``
        or ``"withdrawal"``: the kind of rupture the questionnaire answers
        and observer codes show; drawn per episode, no effect on scores).
    clients : pandas.DataFrame
        One row per client: ``client``, ``n_planned``, ``n_sessions``
        (observed), ``course``, ``noise_sd`` (score units), ``kind`` (the
        planted episode kind, ``"none"`` without one), ``n_episodes`` (as
        observed), ``pattern`` (the truth's ``"no_rupture"``, ``"repaired"``,
        ``"unresolved"`` or ``"mixed"``) and ``outcome`` (a simulated
        treatment outcome, higher = better; see ``outcome_means``).
    params : dict
        Every argument of the call, defaults filled in.
    psq : pandas.DataFrame or None
        With ``psq=True``: simulated Post-Session Questionnaire answers, one
        row per observed session and rater: ``client``, ``rater``
        (``"patient"``, ``"therapist"``), ``session``, ``rupture`` (tension or
        conflict item), ``withdrawal`` (accommodating / avoiding item),
        ``addressed`` and ``resolved`` (answered only when a rupture item is
        3 or more), all on the 1-5 coding ("Not at all" to "Very much").
    observer : pandas.DataFrame or None
        With ``observer=True``: simulated observer (3RS-style) codes, one row
        per observed session, segment and coder: ``client``, ``coder``
        (``"A"``, ``"B"``), ``session``, ``segment`` (1-10), ``withdrawal``
        and ``confrontation`` (rupture markers counted in the segment),
        ``resolution`` (resolution strategies), ``significance`` (1-5, in
        segments with a marker), and the session-level ratings ``resolved``
        and ``contribution`` (1-5, on every row of a session with a marker).
    """

    scores: pd.DataFrame
    truth: pd.DataFrame
    clients: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)
    psq: pd.DataFrame | None = None
    observer: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return (
            f"<Simulation: {len(self.clients)} clients, {len(self.scores)} scores, "
            f"{len(self.truth)} planted episodes>"
        )


def simulate(
    n_clients: int,
    *,
    rng: int | np.random.Generator | None = None,
    scale: str | tuple[float, float] = "wai-sr",
    n_sessions: tuple[int, int] = (8, 20),
    baseline: float = 0.7,
    baseline_sd: float = 0.1,
    noise_sd: float = 0.06,
    noise_spread: float = 0.25,
    ar: float = 0.3,
    growth: float = 1.5,
    courses: Mapping[str, float] | None = None,
    p_episode: float = 0.5,
    kinds: Mapping[str, float] | None = None,
    depth: tuple[float, float] = (3.0, 6.0),
    decline: tuple[int, int] = (2, 4),
    recovery: tuple[int, int] = (2, 4),
    p_missing: float = 0.0,
    p_dropout: float = 0.0,
    missing: str = "absent",
    outcome_means: Mapping[str, float] | None = None,
    psq: bool = False,
    observer: bool = False,
) -> Simulation:
    r"""Simulate an alliance trial with planted rupture episodes.

    Parameters
    ----------
    n_clients : int
        Number of clients. Client ``i`` is generated from its own random
        stream, so the first ``k`` clients are the same whatever ``n_clients``.
    rng : int, numpy.random.Generator or None
        Seed or generator (a generator is used once, to draw the trial's
        seed). None gives a fresh, unpredictable trial.
    scale : str or (low, high)
        Instrument id (see :func:`alliance_ts.list_scales`) or a range. With an
        id, scores are reported in the instrument's default unit (totals or
        item means) and rounded as sums or means of integer item responses;
        with a range they are rounded to 0.01.
    n_sessions : (int, int)
        Range (inclusive) of planned course lengths, drawn uniformly.
        Minimum 3.
    baseline : float
        Mean client baseline level as a share of the scale range (0 = bottom,
        1 = top). 0.7 puts WAI-SR item means near 3.8; 0.92 mimics the SRS
        ceiling.
    baseline_sd : float
        SD of client baselines, as a share of the range.
    noise_sd : float
        Typical session-to-session noise SD, as a share of the range.
    noise_spread : float
        Between-client spread of the noise SD (SD of its logarithm).
    ar : float
        Lag-1 autocorrelation of the session noise, in [0, 1).
    growth : float
        Typical total change over a course in noise-SD units (for the
        ``linear`` and ``log`` courses; the depth of a ``u`` course).
    courses : mapping, optional
        Shares of the whole-course shapes ``flat``, ``linear`` (growth),
        ``log`` (fast early growth) and ``u`` (high-low-high, Kivlighan &
        Shaughnessy 2000; not a rupture). Default
        ``{"flat": .35, "linear": .35, "log": .2, "u": .1}``.
    p_episode : float
        Share of clients with planted episodes.
    kinds : mapping, optional
        Shares of the episode kinds (default: equal shares):

        - ``"v"``: a one-session drop, repaired at the next session;
        - ``"multi"``: a decline over ``decline`` sessions, then a sudden repair;
        - ``"gradual"``: a one-session drop recovering linearly over
          ``recovery`` sessions (repair = first session fully back);
        - ``"sustained"``: a drop that never recovers (unresolved);
        - ``"several"``: two or three ``v``/``multi`` episodes in one course.
    depth : (float, float)
        Range of planted drops in units of the client's noise SD (uniform).
    decline, recovery : (int, int)
        Ranges of sessions for multi-session declines and gradual repairs.
    p_missing : float
        Probability that a session after the first is missed.
    p_dropout : float
        Probability that a client stops early (after a uniformly drawn
        session, keeping at least 3 planned sessions).
    missing : {"absent", "nan"}
        How missed sessions appear in ``scores``.
    outcome_means : mapping, optional
        Mean of the simulated ``outcome`` for each true pattern; the outcome is
        that mean plus standard normal noise. Default
        :data:`OUTCOME_MEANS`: ``{"no_rupture": 0, "repaired": .5,
        "unresolved": -.12, "mixed": .19}``, chosen (by this library) so that
        the true standardised differences are the meta-analysis' d = .62
        (repaired vs unresolved) and d = .50 (repaired vs no rupture). A
        device for tutorials and for studying how detection error attenuates
        effects, not a model of any trial.
    psq : bool, default False
        Also simulate Post-Session Questionnaire answers (``Simulation.psq``)
        from two raters. At a session inside a planted rupture a rater reports
        it (the ``rupture`` item for a confrontation, the ``withdrawal`` item
        for a withdrawal rupture, each episode one of the two with equal
        chance; rating 3-5) with probability .8 (patient) or .6 (therapist),
        rating it unresolved (``resolved`` 1-3); at the repair session half
        the reports say "rupture, resolved" (3 and 4-5) and half report no
        rupture; at other sessions a rupture is reported by mistake with
        probability .05 (patient) or .08 (therapist), mostly resolved within
        the session. All these numbers are this library's choices.
    observer : bool, default False
        Also simulate observer codes (``Simulation.observer``) from two
        coders, consistent with the planted episodes: each session has 10
        segments; inside a planted rupture markers of the episode's type
        occur at .35 per segment (true marks), at the repair session at .2
        per segment in its first half, followed by resolution strategies
        (.6 per segment after the last marker) and a resolution rating of
        4-5; inside an unresolved stretch the rating is 1-2; elsewhere
        markers of either type occur at .01 per segment, mostly (.7)
        resolved within the session. Significance is 3-5 for planted
        ruptures and 1-2 otherwise, contribution 1-3. Each coder marks a
        true marker or strategy with probability .85
        (``CODER_SENSITIVITY``), adds false marks at .005 per segment
        (``CODER_FALSE_RATE``), and is one rating point off with
        probability .3 (``RATING_NOISE``). All these numbers are this
        library's choices; they give coder ICCs around .8-.9 for the marker
        counts (measured in the tests), in the range the 3RS validation
        reports.

    Returns
    -------
    Simulation

    Notes
    -----
    On the item-mean scale :math:`[lo, hi]` with range :math:`R = hi - lo`,
    client *i*'s latent score at planned session :math:`t = 1..T_i` is

    .. math:: y_{it} = b_i + c_i(t) + o_i(t) + e_{it}

    with baseline :math:`b_i \sim N(lo + baseline\,R,\ (baseline\_sd\,R)^2)`,
    course :math:`c_i` (flat; linear :math:`g\,(t-1)/(T-1)`; log
    :math:`g\,\ln t/\ln T`; or U :math:`-g\,4(t-1)(T-t)/(T-1)^2`, with
    :math:`g = growth\cdot\sigma_i\cdot U(0.5, 1.5)`), planted episode
    offsets :math:`o_i(t) \le 0` of depth :math:`d\,\sigma_i`, and stationary
    AR(1) noise with SD :math:`\sigma_i = noise\_sd\,R\,e^{N(0, noise\_spread^2)}`
    and autocorrelation ``ar``. Scores are clipped to the scale (ceiling and
    floor effects) and rounded to the instrument's resolution. Episodes start
    at planned session 2 or later, so a pre-rupture session always exists.

    The truth reports what the *observed* sessions show: an episode whose
    rupture sessions were all missed is dropped; a repair lost to dropout
    makes the episode unresolved.

    Examples
    --------
    >>> import alliance_ts as at
    >>> sim = at.simulate(50, rng=1)
    >>> sim.scores.columns.tolist()
    ['client', 'session', 'score']
    >>> sim.truth["status"].isin(["repaired", "unresolved"]).all()
    np.True_
    >>> at.simulate(5, rng=1).scores.equals(sim.scores[sim.scores["client"] <= 5])
    True
    """
    courses = dict(courses) if courses is not None else {"flat": 0.35, "linear": 0.35, "log": 0.2, "u": 0.1}
    kinds = dict(kinds) if kinds is not None else {k: 1.0 for k in EPISODE_KINDS}
    params: dict[str, Any] = dict(
        n_clients=n_clients, scale=scale, n_sessions=tuple(n_sessions), baseline=baseline,
        baseline_sd=baseline_sd, noise_sd=noise_sd, noise_spread=noise_spread, ar=ar,
        growth=growth, courses=courses, p_episode=p_episode, kinds=kinds, depth=tuple(depth),
        decline=tuple(decline), recovery=tuple(recovery), p_missing=p_missing,
        p_dropout=p_dropout, missing=missing,
        outcome_means=dict(OUTCOME_MEANS if outcome_means is None else outcome_means), psq=bool(psq),
        observer=bool(observer),
    )
    problems: list[Problem] = []
    check_number(problems, "n_clients", n_clients, low=0, integer=True)
    for name, lo_ in (("n_sessions", 3), ("decline", 1), ("recovery", 1)):
        pair = params[name]
        if len(pair) != 2 or any(not float(v).is_integer() for v in pair) or pair[0] < lo_ or pair[0] > pair[1]:
            problems.append(Problem(f"parameter {name!r}",
                                    f"must be a (low, high) pair of whole numbers with {lo_} <= low <= high, "
                                    f"got {pair!r}"))
    check_number(problems, "baseline", baseline, low=0, high=1)
    for name in ("baseline_sd", "noise_spread", "growth"):
        check_number(problems, name, params[name], low=0)
    check_number(problems, "noise_sd", noise_sd, low=0, low_open=True)
    check_number(problems, "ar", ar, low=0, high=1, high_open=True)
    for name in ("p_episode", "p_missing"):
        check_number(problems, name, params[name], low=0, high=1)
    check_number(problems, "p_dropout", p_dropout, low=0, high=1)
    if len(depth) != 2 or depth[0] <= 0 or depth[0] > depth[1]:
        problems.append(Problem("parameter 'depth'", f"must be a (low, high) pair with 0 < low <= high, got {depth!r}"))
    for name, shares, valid in (("courses", courses, COURSES), ("kinds", kinds, EPISODE_KINDS)):
        bad = [k for k in shares if k not in valid]
        if bad or not shares or any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
            problems.append(Problem(f"parameter {name!r}",
                                    f"must map some of {', '.join(valid)} to non-negative shares, got {shares!r}"))
    means = params["outcome_means"]
    if set(means) != set(OUTCOME_MEANS) or not all(np.isfinite(float(v)) for v in means.values()):
        problems.append(Problem("parameter 'outcome_means'",
                                f"must map each of {', '.join(OUTCOME_MEANS)} to a finite number, got {means!r}"))
    if missing not in ("absent", "nan"):
        problems.append(Problem("parameter 'missing'", f"must be 'absent' or 'nan', got {missing!r}"))
    rng_range, msg = resolve_scale(scale)
    if msg:
        problems.append(Problem("parameter 'scale'", msg))
    if problems:
        raise InvalidInputError(problems, "alliance_ts.simulate()")

    if rng_range is None:  # pragma: no cover - resolve_scale reported it above
        raise InvalidInputError([Problem("parameter 'scale'", "a scale is needed")], "alliance_ts.simulate()")
    items, total = _resolution(scale, rng_range)
    lo, hi = (rng_range.low / items, rng_range.high / items) if total else (rng_range.low, rng_range.high)
    seed = _seed(rng)
    children = np.random.SeedSequence(seed).spawn(int(n_clients))
    spec = _Spec(
        lo=lo, hi=hi, items=items, total=total, n_sessions=(int(n_sessions[0]), int(n_sessions[1])),
        baseline=baseline, baseline_sd=baseline_sd, noise_sd=noise_sd, noise_spread=noise_spread,
        ar=ar, growth=growth, course_names=list(courses), course_p=_norm(courses.values()),
        p_episode=p_episode, kind_names=list(kinds), kind_p=_norm(kinds.values()),
        depth=(float(depth[0]), float(depth[1])), decline=(int(decline[0]), int(decline[1])),
        recovery=(int(recovery[0]), int(recovery[1])), p_missing=p_missing, p_dropout=p_dropout,
    )
    score_rows, truth_rows, client_rows, psq_rows, obs_rows = [], [], [], [], []
    for i, child in enumerate(children, start=1):
        s, t, c, planted = _one_client(i, np.random.default_rng(child), spec, keep_nan=missing == "nan")
        score_rows.append(s)
        # outcome, rupture types, questionnaire answers and observer codes come
        # from streams of their own, so turning them on never changes the scores
        g_outcome, g_psq, g_type, g_obs = (np.random.default_rng(x) for x in child.spawn(4))
        types = g_type.integers(0, 2, len(planted))
        for row in t:
            row.append(RUPTURE_TYPES[types[row.pop(9)]])
        truth_rows += t
        c.append(float(means[c[-1]]) + float(g_outcome.normal()))
        client_rows.append(c)
        observed_sessions = s[~np.isnan(s[:, 2]), 1].astype(np.int64)
        if psq:
            psq_rows.append(_psq_answers(i, g_psq, planted, types, observed_sessions))
        if observer:
            obs_rows.append(_observer_codes(i, g_obs, planted, types, observed_sessions))
    if score_rows:
        scores = pd.DataFrame(np.concatenate(score_rows), columns=["client", "session", "score"])
    else:
        scores = pd.DataFrame(np.zeros((0, 3)), columns=["client", "session", "score"])
    scores = scores.astype({"client": np.int64, "session": np.int64, "score": float})
    truth = pd.DataFrame(
        truth_rows,
        columns=["client", "episode", "kind", "start", "trough", "end", "status", "depth", "depth_sd", "type"],
    ).astype({"client": np.int64, "episode": np.int64, "start": np.int64, "trough": np.int64,
              "end": "Int64", "depth": float, "depth_sd": float})
    clients = pd.DataFrame(
        client_rows,
        columns=["client", "n_planned", "n_sessions", "course", "noise_sd", "kind", "n_episodes", "pattern", "outcome"],
    ).astype({"client": np.int64, "n_planned": np.int64, "n_sessions": np.int64, "noise_sd": float,
              "n_episodes": np.int64, "outcome": float})
    psq_table = None
    if psq:
        columns = ["client", "rater", "session", "rupture", "withdrawal", "addressed", "resolved"]
        psq_table = (pd.concat(psq_rows, ignore_index=True) if psq_rows else pd.DataFrame(columns=columns))
        psq_table = psq_table.astype({"client": np.int64, "session": np.int64, "rupture": float,
                                      "withdrawal": float, "addressed": float, "resolved": float})
    obs_table = None
    if observer:
        obs_table = (pd.concat(obs_rows, ignore_index=True) if obs_rows else
                     pd.DataFrame({c: pd.Series(dtype=float) for c in OBSERVER_COLUMNS}))
        obs_table = obs_table.astype({"client": np.int64, "session": np.int64, "segment": np.int64})
    return Simulation(scores, truth, clients, params, psq_table, obs_table)


@dataclass(frozen=True)
class _Spec:
    lo: float
    hi: float
    items: int
    total: bool
    n_sessions: tuple[int, int]
    baseline: float
    baseline_sd: float
    noise_sd: float
    noise_spread: float
    ar: float
    growth: float
    course_names: list[str]
    course_p: np.ndarray
    p_episode: float
    kind_names: list[str]
    kind_p: np.ndarray
    depth: tuple[float, float]
    decline: tuple[int, int]
    recovery: tuple[int, int]
    p_missing: float
    p_dropout: float


def _norm(values) -> np.ndarray:
    a = np.asarray(list(values), dtype=float)
    return a / a.sum()


def _seed(rng: Any) -> int:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**63 - 1))
    if rng is None:
        return int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return int(rng)
    raise InvalidInputError(
        [Problem("parameter 'rng'", f"must be an int, a numpy Generator or None, got {rng!r}")],
        "alliance_ts.simulate()",
    )


def _resolution(scale, rng_range: ScoreRange) -> tuple[int, bool]:
    """(items, reported-as-total) for rounding."""
    if isinstance(scale, str):
        key, _, level = scale.strip().lower().partition(":")
        s = get_scale(key)
        level = level or s.default
        return s.items, level == "total"
    return 1, False


def _one_client(cid: int, g: np.random.Generator, spec: _Spec, keep_nan: bool):
    R = spec.hi - spec.lo
    T = int(g.integers(spec.n_sessions[0], spec.n_sessions[1] + 1))
    t = np.arange(1, T + 1, dtype=float)
    sigma = spec.noise_sd * R * math.exp(g.normal(0.0, spec.noise_spread))
    base = g.normal(spec.lo + spec.baseline * R, spec.baseline_sd * R)
    course = spec.course_names[int(g.choice(len(spec.course_names), p=spec.course_p))]
    gain = spec.growth * sigma * g.uniform(0.5, 1.5)
    if course == "linear":
        c = gain * (t - 1) / max(T - 1, 1)
    elif course == "log":
        c = gain * np.log(t) / math.log(T)
    elif course == "u":
        c = -gain * 4 * (t - 1) * (T - t) / max(T - 1, 1) ** 2
    else:
        c = np.zeros(T)
    # stationary AR(1) noise with SD sigma
    z = g.normal(0.0, 1.0, T)
    e = np.empty(T)
    e[0] = sigma * z[0]
    scale_innov = sigma * math.sqrt(1 - spec.ar**2)
    for j in range(1, T):
        e[j] = spec.ar * e[j - 1] + scale_innov * z[j]

    # planted episodes: (kind, start, trough, end or None, depth) in 1-based sessions
    offset = np.zeros(T)
    planted: list[tuple[str, int, int, int | None, float]] = []
    has_ep = g.random() < spec.p_episode
    kind = spec.kind_names[int(g.choice(len(spec.kind_names), p=spec.kind_p))]
    d_draws = g.uniform(spec.depth[0], spec.depth[1], 3)
    if has_ep:
        if kind == "several":
            n_ep = int(g.integers(2, 4))
            cursor = 2
            for k in range(n_ep):
                sub = "v" if g.random() < 0.5 else "multi"
                placed = _plant(g, sub, cursor, T, d_draws[k] * sigma, spec, offset)
                if placed is None:
                    break
                planted.append(placed)
                cursor = (placed[3] or T) + 2
        else:
            placed = _plant(g, kind, 2, T, d_draws[0] * sigma, spec, offset)
            if placed is None and kind != "v":  # course too short: fall back to a V
                placed = _plant(g, "v", 2, T, d_draws[0] * sigma, spec, offset)
            if placed is not None:
                planted.append(placed)

    latent = base + c + offset + e
    if spec.total:
        score = np.round(np.clip(latent, spec.lo, spec.hi) * spec.items)
    elif spec.items > 1:
        score = np.round(np.clip(latent, spec.lo, spec.hi) * spec.items) / spec.items
    else:
        score = np.round(np.clip(latent, spec.lo, spec.hi), 2).astype(float)

    # missed sessions and dropout
    observed = np.ones(T, dtype=bool)
    miss = g.random(T) < spec.p_missing
    miss[0] = False
    observed &= ~miss
    last = T
    if g.random() < spec.p_dropout and T > 3:
        last = int(g.integers(3, T))
    observed[last:] = False
    sessions = np.arange(1, T + 1)

    unit = spec.items if spec.total else 1.0
    truth = []
    for index, (kind_, start, _trough, end, dep) in enumerate(planted):
        inside = observed & (sessions >= start) & (sessions < (end if end is not None else T + 1))
        if not inside.any():
            continue
        obs_sessions = sessions[inside]
        s_obs = int(obs_sessions[0])
        tr_obs = int(obs_sessions[np.argmin(offset[inside])])
        e_obs = None
        if end is not None:
            after = sessions[observed & (sessions >= end)]
            e_obs = int(after[0]) if after.size else None
        truth.append(
            [cid, 0, kind_, s_obs, tr_obs, e_obs, "repaired" if e_obs is not None else "unresolved",
             dep * unit, dep / sigma, index]
        )
    for k, row in enumerate(truth, start=1):
        row[1] = k
    statuses = {r[6] for r in truth}
    pattern = (
        "no_rupture" if not truth else "mixed" if len(statuses) == 2 else statuses.pop()
    )
    keep = observed if not keep_nan else sessions <= last
    out_score = np.where(observed, score, np.nan)[keep]
    rows = np.column_stack([np.full(keep.sum(), cid, dtype=float), sessions[keep].astype(float), out_score])
    client = [cid, T, int(observed.sum()), course, sigma * unit, kind if has_ep else "none", len(truth), pattern]
    return rows, truth, client, planted


def _plant(g, kind, earliest, T, D, spec, offset):
    """Add one episode's offsets; return (kind, start, trough, end, depth) or None."""
    if kind == "v":
        length, tail = 1, 1
    elif kind == "multi":
        length, tail = int(g.integers(spec.decline[0], spec.decline[1] + 1)), 1
    elif kind == "gradual":
        length, tail = int(g.integers(spec.recovery[0], spec.recovery[1] + 1)), 1
    else:  # sustained
        length, tail = 1, 0
    latest = T - length - tail + 1
    if latest < earliest:
        return None
    s = int(g.integers(earliest, latest + 1))
    i = s - 1  # 0-based
    if kind == "v":
        offset[i] -= D
        return ("v", s, s, s + 1, D)
    if kind == "multi":
        offset[i : i + length] -= D * np.arange(1, length + 1) / length
        return ("multi", s, s + length - 1, s + length, D)
    if kind == "gradual":
        offset[i : i + length] -= D * (1 - np.arange(length) / length)
        return ("gradual", s, s, s + length, D)
    offset[i:] -= D
    return ("sustained", s, s, None, D)


def _states(planted, types: np.ndarray, sessions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per session number: 0 none, 1 inside a planted rupture, 2 its repair session; and the rupture's type."""
    L = int(sessions.max()) + 2 if sessions.size else 2
    state = np.zeros(L, dtype=np.int8)
    kind = np.zeros(L, dtype=np.int8)  # 0 confrontation, 1 withdrawal
    for (_, start, _, end, _), t in zip(planted, types):
        stop = end if end is not None else L
        state[start:stop] = 1
        kind[start:stop] = t
        if end is not None and end < L:
            state[end] = 2
            kind[end] = t
    return state, kind


def _psq_answers(cid: int, g: np.random.Generator, planted, types: np.ndarray, sessions: np.ndarray) -> pd.DataFrame:
    """PSQ answers of both raters at the observed ``sessions`` (see :func:`simulate`)."""
    state, kind = _states(planted, types, sessions)
    frames = []
    for rater, (sensitivity, false_rate) in PSQ_RATERS.items():
        k = sessions.size
        st, kd = state[sessions], kind[sessions]
        u = g.random(k)
        report = np.where(st == 1, u < sensitivity, np.where(st == 2, u < 0.5, u < false_rate))
        false_kind = g.integers(0, 2, k)
        kd = np.where(st == 0, false_kind, kd)
        high = g.choice([3.0, 4.0, 5.0], size=k, p=[0.4, 0.35, 0.25])
        low = g.choice([1.0, 2.0], size=k, p=[0.7, 0.3])
        other = g.choice([1.0, 2.0], size=k, p=[0.8, 0.2])
        rupture = np.where(report & (kd == 0), high, np.where(report, other, low))
        withdrawal = np.where(report & (kd == 1), high, np.where(report, other,
                                                                 g.choice([1.0, 2.0], size=k, p=[0.7, 0.3])))
        # answered only when a problem is reported; resolved within the session
        # at repair sessions and for most mistaken reports, not inside a rupture
        resolved_now = np.where(st == 2, True, np.where(st == 1, False, g.random(k) < 0.7))
        resolved = np.where(resolved_now, g.choice([4.0, 5.0], size=k), g.choice([1.0, 2.0, 3.0], size=k))
        addressed = np.where(resolved_now, g.choice([3.0, 4.0, 5.0], size=k), g.choice([1.0, 2.0, 3.0], size=k))
        answered = report
        frames.append(pd.DataFrame({
            "client": cid, "rater": rater, "session": sessions,
            "rupture": rupture, "withdrawal": withdrawal,
            "addressed": np.where(answered, addressed, np.nan),
            "resolved": np.where(answered, resolved, np.nan),
        }))
    return pd.concat(frames, ignore_index=True)


OBSERVER_COLUMNS = ("client", "coder", "session", "segment", "withdrawal", "confrontation", "resolution",
                    "significance", "resolved", "contribution")


def _observer_codes(cid: int, g: np.random.Generator, planted, types: np.ndarray,
                    sessions: np.ndarray) -> pd.DataFrame:
    """Observer codes of both coders at the observed ``sessions`` (see :func:`simulate`)."""
    state, kind = _states(planted, types, sessions)
    st, kd = state[sessions], kind[sessions]
    n, k = sessions.size, SEGMENTS
    seg = np.arange(k)[None, :]
    # true marks per segment: the planted rupture's type inside it, background marks of both types elsewhere
    inside, repair = (st == 1)[:, None], (st == 2)[:, None]
    first_half = seg < k // 2
    rate_own = np.where(inside, 0.35, np.where(repair & first_half, 0.2, 0.01))
    rate = {0: np.where(kd[:, None] == 0, rate_own, 0.01), 1: np.where(kd[:, None] == 1, rate_own, 0.01)}
    true = {t: g.poisson(np.broadcast_to(rate[t], (n, k))) for t in (0, 1)}
    marked = (true[0] + true[1]) > 0
    any_mark: np.ndarray = np.asarray(marked.any(axis=1))
    last = np.where(marked, seg, -1).max(axis=1)
    resolved_bg = g.random(n) < 0.7  # background ruptures: mostly resolved within the session
    after = seg > last[:, None]
    strat_rate = np.where(repair | (resolved_bg & (st == 0))[:, None], np.where(after, 0.6, 0.0), 0.03)
    strategies = g.poisson(np.where(any_mark[:, None], strat_rate, 0.0))
    planted_here = st > 0
    significance = np.where(planted_here[:, None], g.integers(3, 6, (n, k)), g.integers(1, 3, (n, k)))
    resolved = np.where(st == 2, g.integers(4, 6, n),
                        np.where(st == 1, g.integers(1, 3, n),
                                 np.where(resolved_bg, g.integers(4, 6, n), g.integers(2, 4, n))))
    contribution = g.integers(1, 4, n)
    sens, false_rate, noise = CODER_SENSITIVITY, CODER_FALSE_RATE, RATING_NOISE
    frames = []
    for coder in CODERS:
        seen = {t: g.binomial(true[t], sens) + g.poisson(false_rate, (n, k)) for t in (0, 1)}
        res = g.binomial(strategies, sens) + g.poisson(false_rate, (n, k))
        marks = (seen[0] + seen[1]) > 0
        coded_any = marks.any(axis=1)

        def rating(values: np.ndarray) -> np.ndarray:
            off = np.where(g.random(values.shape) < noise, g.choice([-1, 1], values.shape), 0)
            return np.clip(values + off, 1, 5).astype(float)

        sig = np.where(marks, rating(significance), np.nan)
        glob_res = np.where(coded_any, rating(resolved), np.nan)
        glob_con = np.where(coded_any, rating(contribution), np.nan)
        frames.append(pd.DataFrame({
            "client": cid, "coder": coder, "session": np.repeat(sessions, k),
            "segment": np.tile(np.arange(1, k + 1), n),
            "withdrawal": seen[1].ravel().astype(float), "confrontation": seen[0].ravel().astype(float),
            "resolution": res.ravel().astype(float), "significance": sig.ravel(),
            "resolved": np.repeat(glob_res, k), "contribution": np.repeat(glob_con, k),
        }))
    return pd.concat(frames, ignore_index=True)
