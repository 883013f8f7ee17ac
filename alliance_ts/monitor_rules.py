"""Online monitoring rules: one session at a time, a few numbers per client.

A monitoring rule decides, at each new session of a client, whether a rupture
is suspected *now*, from that session and the client's earlier ones only. It
keeps a small state per client (numpy arrays indexed by the client's code),
so that an update costs the same whatever the length of the history, and it
updates many clients at once (one vectorised :meth:`OnlineRule.step` per
session rank, never a Python loop over clients).

The registry (:func:`list_monitor_rules`) holds

- ``cutoff`` (and its preset ``srs36``): an alert while the score is at or
  below a fixed cut-off;
- ``drop``: an alert when the score falls ``k`` noise SDs below the client's
  own baseline (the mean of its earlier sessions outside alerts), with a
  moderated (empirical-Bayes) noise SD;

and, for :func:`alliance_ts.monitor` only, every look-back rule of
:func:`alliance_ts.detect` that reads session scores, run on each prefix of
the courses (see :mod:`alliance_ts.monitor`).

Each rule's docstring states its criterion, its missed-session policy and
which parts are this library's choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ._lazy import special, stats
from .errors import InvalidInputError, Problem, UnknownRuleError
from .noise import trigamma_inverse
from .params import integer, number, parameters
from .validation import plain

__all__ = [
    "DEFAULT_MONITOR_RULE",
    "CutOff",
    "Drop",
    "OnlineRule",
    "Prior",
    "StepResult",
    "fit_prior",
    "get_online_rule",
    "list_monitor_rules",
]

#: The rule of ``at.monitor(df)`` and ``at.Monitor()`` when none is named.
DEFAULT_MONITOR_RULE = "drop"
#: Prior degrees of freedom above this are treated as this many (the client's own variance then barely counts).
MAX_PRIOR_DF = 1000.0


@dataclass(frozen=True)
class StepResult:
    """What a rule says about one session of each of the clients stepped.

    Attributes
    ----------
    open : ndarray of bool
        An alert is open after this session.
    evidence : ndarray of float
        The rule's statistic (more negative = stronger evidence of a
        rupture): ``drop`` the z statistic, ``cutoff`` the score minus the
        cut-off.
    p : ndarray of float
        One-sided p-value of the evidence (NaN where the rule has none).
    threshold : ndarray of float
        The score at or below which this session would open an alert (NaN
        while the rule cannot alert yet).
    baseline : ndarray of float
        The reference level the session was compared with (NaN without one).
    """

    open: np.ndarray
    evidence: np.ndarray
    p: np.ndarray
    threshold: np.ndarray
    baseline: np.ndarray


class OnlineRule:
    """Base of the online monitoring rules (frozen dataclasses of declared parameters).

    A subclass declares its parameters with :mod:`alliance_ts.params`,
    the per-client arrays it keeps (:attr:`fields`: name -> (dtype, initial
    value)) and :meth:`step`, which updates those arrays in place for the
    clients ``idx`` given one observed score each.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    provenance: ClassVar[str] = ""
    fields: ClassVar[dict[str, tuple[str, float]]] = {}

    def check(self) -> list[Problem]:
        """Every problem with the parameter values (empty when valid)."""
        problems: list[Problem] = []
        for p in parameters(type(self)):
            problems += p.check(getattr(self, p.name))
        return problems

    def params(self) -> dict[str, Any]:
        """Every parameter and its value."""
        return {p.name: getattr(self, p.name) for p in parameters(type(self))}

    def ready(self) -> list[Problem]:
        """Problems that stop the rule from running (a prior not yet set, ...)."""
        return []

    def new_arrays(self, n: int) -> dict[str, np.ndarray]:
        """Fresh per-client arrays for ``n`` clients."""
        return {k: np.full(n, fill, dtype=dtype) for k, (dtype, fill) in self.fields.items()}

    def step(self, arrays: dict[str, np.ndarray], idx: np.ndarray, x: np.ndarray,
             was_open: np.ndarray) -> StepResult:  # pragma: no cover - every rule defines its own
        """Take one observed score ``x`` of each client ``idx`` (distinct codes); update ``arrays`` in place."""
        raise NotImplementedError(f"{type(self).__name__} must define step(): how one session updates its state")


@dataclass(frozen=True)
class CutOff(OnlineRule):
    """Alert while the session score is at or below a fixed cut-off.

    **Criterion.** A session with score ``x <= cutoff`` opens an alert (or
    keeps one open); the alert is repaired at the first later session with
    ``x > cutoff``. Evidence is ``x - cutoff`` (score units; 0 at the
    cut-off, more negative = further below it); there is no p-value.

    **Missed sessions** (absent rows, NaN scores) change nothing: an open
    alert stays open.

    **Provenance.** The ``srs36`` preset (cut-off 36 on the 0-40 total of the
    Session Rating Scale) follows the SRS convention that a total of 36 or
    less may signal a problem in the alliance (Duncan et al., 2003, and the
    SRS materials, as summarised in this project's domain notes; the primary
    texts could not be checked here, so whether the published convention
    reads "36 or less" or "below 36" is *unverified*). Treating each such
    session as an alert, and the first session above the cut-off as its
    repair, are this library's choices.
    """

    name: ClassVar[str] = "cutoff"
    summary: ClassVar[str] = "alert while the score is at or below a fixed cut-off; repaired at the first score above"
    provenance: ClassVar[str] = "srs36: the SRS convention (36 or less of 40; unverified wording); the rest ours"
    fields: ClassVar[dict[str, tuple[str, float]]] = {}

    cutoff: float | None = number(None, "alert when score <= cutoff (score units)", allow_none=True)

    def ready(self) -> list[Problem]:
        if self.cutoff is None:
            return [Problem("parameter 'cutoff'", "the cutoff rule needs a cut-off (score units): pass cutoff=, "
                            "or use the preset 'srs36' (36 on the 0-40 SRS total)")]
        return []

    def step(self, arrays, idx, x, was_open) -> StepResult:
        cut = float(self.cutoff if self.cutoff is not None else math.nan)
        n = x.size
        return StepResult(open=x <= cut, evidence=x - cut, p=np.full(n, np.nan), threshold=np.full(n, cut),
                          baseline=np.full(n, np.nan))


@dataclass(frozen=True)
class Drop(OnlineRule):
    r"""Alert when a score falls ``k`` noise SDs below the client's own baseline.

    **Criterion.** Before session *t* the client has :math:`n` earlier
    observed sessions outside alerts, with mean :math:`\bar x` (the
    baseline) and sum of squared deviations :math:`M_2` (Welford's running
    update). With at least ``min_history`` of them, the noise SD is the
    moderated (empirical-Bayes) estimate

    .. math:: s^2 = \frac{d_0 s_0^2 + M_2}{d_0 + n - 1}

    (the client's own variance :math:`M_2/(n-1)`, with :math:`n - 1`
    degrees of freedom, shrunk towards the prior :math:`s_0^2` worth
    :math:`d_0` degrees of freedom; Smyth, 2004), and

    .. math:: z_t = (x_t - \bar x) / s, \qquad p_t = \Phi(z_t).

    A session with :math:`z_t \le -k` opens an alert. While it is open, a
    session with :math:`z_t \ge -k_{repair}` repairs it; the others keep it
    open. Sessions at which an alert is open after the step (the opening
    session and the ones that keep it open) do not enter the baseline or
    :math:`M_2`; every other observed session does (the repair session
    included). Evidence is :math:`z_t`, its one-sided normal p-value is
    :math:`p_t` (a description of the size of the drop, not a calibrated
    error rate: scores are autocorrelated and the moderated SD is an
    estimate).

    **Ceiling.** A client who rates the maximum every session has
    :math:`M_2 = 0`, so :math:`s \ge s_0\sqrt{d_0/(d_0 + n - 1)} > 0`: the
    prior keeps the SD above zero (``s0`` and ``d0`` must be positive).

    **Prior.** ``s0`` and ``d0`` are parameters, or are fitted once on a
    reference table (:func:`fit_prior`, ``Monitor.fit``, ``prior=`` of
    :func:`alliance_ts.monitor`) and then stored with the state, so that a
    live run and a batch run use the same numbers.

    **Missed sessions** change nothing: an open alert stays open.

    **Provenance.** This library's own rule: the drop-from-baseline idea of
    the published look-back rules (Stiles et al., 2004; Gumz et al., 2012)
    made causal, with limma's moderated variance (Smyth, 2004) as the noise
    SD. No parameter comes from a publication; ``k = 2.5`` and
    ``k_repair = 1`` are this library's defaults, compared on the benchmark
    in ``docs/monitor.md``.

    References
    ----------
    Smyth, G. K. (2004). Linear models and empirical Bayes methods for
    assessing differential expression in microarray experiments.
    *Statistical Applications in Genetics and Molecular Biology*, 3(1),
    Article 3.
    """

    name: ClassVar[str] = "drop"
    summary: ClassVar[str] = ("alert when the score is k moderated noise SDs below the mean of the client's earlier "
                              "sessions outside alerts; repaired when back within k_repair SDs")
    provenance: ClassVar[str] = "library's own rule (moderated SD after Smyth 2004)"
    fields: ClassVar[dict[str, tuple[str, float]]] = {"n": ("int64", 0), "mean": ("float64", 0.0),
                                                      "m2": ("float64", 0.0)}

    k: float = number(2.5, "alert when the score is at least k noise SDs below the baseline", low=0, low_open=True)
    k_repair: float = number(1.0, "repaired when the score is back within k_repair SDs of the baseline "
                             "(k_repair <= k)", low=0)
    min_history: int = integer(2, "earlier sessions outside alerts needed before a session can alert", low=1)
    s0: float | None = number(None, "prior noise SD (score units); None: fitted (Monitor.fit, prior=)",
                              low=0, low_open=True, allow_none=True)
    d0: float | None = number(None, f"prior degrees of freedom (capped at {MAX_PRIOR_DF:g}); None: fitted",
                              low=0, low_open=True, high=MAX_PRIOR_DF, allow_none=True)

    def check(self) -> list[Problem]:
        problems = super().check()
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (self.k, self.k_repair))
        if numbers and self.k > 0 and self.k_repair > self.k:
            problems.append(Problem("parameter 'k_repair'", f"must be at most k ({self.k:g}), got "
                                    f"{plain(self.k_repair)} (a session that opens an alert would repair it at once)"))
        if (self.s0 is None) != (self.d0 is None):
            problems.append(Problem("parameters 's0', 'd0'", "give both or neither (neither: fit the prior on a "
                                    "reference table)"))
        return problems

    def ready(self) -> list[Problem]:
        if self.s0 is None or self.d0 is None:
            return [Problem("parameters 's0', 'd0'", "the drop rule needs its prior noise SD: pass s0= and d0= "
                            "(score units, degrees of freedom), fit it on a reference table (Monitor.fit(table); "
                            "at.monitor(..., prior=table)), or in batch prior='data'")]
        return []

    def step(self, arrays, idx, x, was_open) -> StepResult:
        s0, d0 = float(self.s0 or math.nan), float(self.d0 or math.nan)
        n, mean, m2 = arrays["n"][idx], arrays["mean"][idx], arrays["m2"][idx]
        ready = n >= self.min_history
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt((d0 * s0 * s0 + m2) / (d0 + n - 1))
            z = np.where(ready, (x - mean) / sd, np.nan)
        is_open = ready & np.where(was_open, ~(z >= -self.k_repair), z <= -self.k)
        take = ~is_open
        n1 = n + 1
        delta = x - mean
        new_mean = mean + delta / n1
        arrays["n"][idx] = np.where(take, n1, n)
        arrays["mean"][idx] = np.where(take, new_mean, mean)
        arrays["m2"][idx] = np.where(take, m2 + delta * (x - new_mean), m2)
        nan = np.full(x.size, np.nan)
        return StepResult(
            open=is_open,
            evidence=z,
            p=np.where(ready, stats.norm.cdf(z), nan),
            threshold=np.where(ready, mean - self.k * sd, nan),
            baseline=np.where(n > 0, mean, nan),
        )


# --------------------------------------------------------------------------
# the prior of the drop rule


@dataclass(frozen=True)
class Prior:
    """A fitted prior for the ``drop`` rule's noise SD.

    Attributes
    ----------
    s0 : float
        Prior noise SD (score units).
    d0 : float
        Prior degrees of freedom (at most :data:`MAX_PRIOR_DF`).
    n_clients : int
        Clients with a positive variance used in the fit.
    source : str
        Where it was fitted (for the record).
    """

    s0: float
    d0: float
    n_clients: int
    source: str = "reference table"


def fit_prior(data: Any, *, client: str = "client", session: str = "session", score: str = "score",
              scale: Any = None, source: str = "reference table") -> Prior:
    r"""Fit the ``drop`` rule's prior noise SD on a reference table.

    Parameters
    ----------
    data : pandas.DataFrame
        Long table of earlier courses (other clients, or an earlier period),
        validated as :func:`alliance_ts.detect` validates its input.
    client, session, score : str
        Column names.
    scale : str or (float, float), optional
        Scores outside it are an input error.
    source : str
        What the table is, for the record.

    Returns
    -------
    Prior

    Notes
    -----
    Each client with at least two observed scores and a positive variance
    gives :math:`s_i^2` (ddof 1) on :math:`\nu_i = n_i - 1` degrees of
    freedom. The prior is the scaled inverse-chi-square distribution whose
    moments of :math:`\log s_i^2` match (Smyth, 2004, section 6.2): with
    :math:`e_i = \log s_i^2 - \psi(\nu_i/2) + \log(\nu_i/2)`,
    :math:`\psi'(d_0/2) = \widehat{\mathrm{var}}(e) - \overline{\psi'(\nu_i/2)}`
    and :math:`s_0^2 = \exp(\bar e + \psi(d_0/2) - \log(d_0/2))`; when the
    right-hand side is not positive, :math:`d_0` is infinite (here capped at
    :data:`MAX_PRIOR_DF`) and :math:`s_0^2 = \exp(\bar e)`. Clients with
    zero variance (every score the same, as at the ceiling) cannot enter a
    log-variance and are left out. The reference scores are used as they
    are, so ruptures and trends in them make :math:`s_0` larger (alerts
    more conservative). The fit depends on the clients' scores only, never
    on their ids or row order.

    Examples
    --------
    >>> import alliance_ts as at
    >>> prior = at.fit_prior(at.simulate(200, rng=1, p_episode=0).scores, scale="wai-sr")
    >>> round(prior.s0, 2), prior.n_clients   # WAI-SR totals; the simulated noise SD is about 2.9
    (2.65, 200)
    """
    from .validation import read_panel

    panel, problems = read_panel(data, client=client, session=session, score=score, scale=scale)
    if problems or panel is None:
        raise InvalidInputError(problems, "alliance_ts.fit_prior()")
    n = np.diff(panel.obs_offsets)
    codes = np.repeat(np.arange(n.size), n)
    sums = np.bincount(codes, weights=panel.obs_values, minlength=n.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / n
        dev = panel.obs_values - means[codes]
        ss = np.bincount(codes, weights=dev * dev, minlength=n.size)
        var = ss / (n - 1)
    # differences below the float resolution of the scores are no variation
    top = np.zeros(n.size)
    if panel.obs_values.size:
        np.maximum.at(top, codes, np.abs(panel.obs_values))
    use = (n >= 2) & (var > (1e-12 * top) ** 2)
    if int(use.sum()) < 3:
        raise InvalidInputError([Problem("data", f"{int(use.sum())} client(s) with two or more scores that vary; "
                                         "fitting the prior noise SD needs at least 3")], "alliance_ts.fit_prior()")
    # sorted, so that the fit depends on the clients' data only, never on their ids or order
    key = np.lexsort((var[use], n[use]))
    df = (n[use][key] - 1).astype(float)
    e = np.sort(np.log(var[use][key]) - special.digamma(df / 2) + np.log(df / 2))
    emean = math.fsum(e) / e.size
    excess = math.fsum((e - emean) ** 2) / (e.size - 1) - math.fsum(np.sort(special.polygamma(1, df / 2))) / e.size
    if excess > 0:
        d0 = min(2.0 * trigamma_inverse(excess), MAX_PRIOR_DF)
    else:
        d0 = MAX_PRIOR_DF
    s0 = math.sqrt(math.exp(emean + float(special.digamma(d0 / 2)) - math.log(d0 / 2)))
    return Prior(s0=s0, d0=d0, n_clients=int(use.sum()), source=source)


# --------------------------------------------------------------------------
# the registry


@dataclass(frozen=True)
class _Entry:
    cls: type[OnlineRule]
    defaults: dict[str, Any]
    scale: str | None = None
    summary: str = ""


_ONLINE: dict[str, _Entry] = {
    "drop": _Entry(Drop, {}),
    "cutoff": _Entry(CutOff, {}),
    "srs36": _Entry(CutOff, {"cutoff": 36.0}, "srs",
                    "Session Rating Scale: alert while the 0-40 total is 36 or less; repaired above 36"),
}


def online_names() -> list[str]:
    """Names of the rules that can monitor live (``Monitor``)."""
    return list(_ONLINE)


def get_online_rule(name: Any, params: dict[str, Any], context: str) -> tuple[OnlineRule | None, str | None,
                                                                                list[Problem]]:
    """The online rule object, its default scale and every problem with the name or the parameters."""
    if not isinstance(name, str) or name not in _ONLINE:
        return None, None, [_unknown(name)]
    entry = _ONLINE[name]
    declared = {p.name for p in parameters(entry.cls)}
    unknown = [k for k in params if k not in declared]
    problems = []
    if unknown:
        problems.append(Problem("parameters", f"unknown parameter(s) {', '.join(map(plain, unknown))} of rule "
                                f"{plain(name)}; its parameters: {', '.join(sorted(declared))}"))
        params = {k: v for k, v in params.items() if k in declared}
    rule = entry.cls(**{**entry.defaults, **params})
    problems += rule.check()
    return (None if problems else rule), entry.scale, problems


def _unknown(name: Any) -> Problem:
    return Problem("parameter 'rule'", f"unknown monitoring rule {plain(name)}; live rules: {', '.join(_ONLINE)}; in "
                   "batch (at.monitor) also every look-back rule of at.detect that reads scores (see "
                   "at.list_monitor_rules())")


def lookback_names() -> list[str]:
    """Registered :func:`alliance_ts.detect` rules that read session scores (batch monitoring by prefixes)."""
    from .rules import Rule
    from .rules._base import _REGISTRY

    return [n for n, s in _REGISTRY.items() if s.cls.reads is Rule.reads]


def unknown_rule_error(name: Any, context: str) -> UnknownRuleError:
    return UnknownRuleError([_unknown(name)], context)


def list_monitor_rules() -> pd.DataFrame:
    """Every rule :func:`alliance_ts.monitor` can run, and whether it can run live.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``mode`` (``"online"``: a live state of a few
        numbers per client, usable with :class:`alliance_ts.Monitor`;
        ``"prefix"``: a look-back rule of :func:`alliance_ts.detect` rerun on
        each prefix of the courses, batch only), ``live`` (bool),
        ``summary``, ``parameters`` (name=default) and ``provenance``.

    Examples
    --------
    >>> import alliance_ts as at
    >>> t = at.list_monitor_rules().set_index("name")
    >>> t.loc[["drop", "srs36", "recommended"], "live"].tolist()
    [True, True, False]
    """
    from .rules import list_rules

    rows = []
    for name, entry in _ONLINE.items():
        declared = parameters(entry.cls)
        shown = ", ".join(f"{p.name}={entry.defaults.get(p.name, p.default)!r}" for p in declared)
        rows.append({"name": name, "mode": "online", "live": True, "summary": entry.summary or entry.cls.summary,
                     "parameters": shown + (f"; scale={entry.scale!r}" if entry.scale else ""),
                     "provenance": entry.cls.provenance})
    table = list_rules().set_index("name")
    for name in lookback_names():
        row = table.loc[name] if name in table.index else None
        rows.append({"name": name, "mode": "prefix", "live": False,
                     "summary": ("look-back rule run on each prefix: alert while an episode is open at the session; "
                                 + (str(row["summary"]) if row is not None else "")),
                     "parameters": str(row["parameters"]) if row is not None else "",
                     "provenance": "the rule's own (see at.list_rules()); the prefix mode is ours"})
    return pd.DataFrame(rows)
