"""Drop-and-return episodes: the "V" family and its published presets.

One parameterised rule, :class:`VShape` (``rule="vshape"``), whose
parameters span the criteria of Stiles et al. (2004), Strauss et al. (2006)
and Gumz et al. (2012); the presets ``stiles2004``, ``strauss2006`` and
``gumz2012`` are named bundles of its parameter values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..panel import Block, Panel
from ..params import choice, integer, number
from ._base import BlockResult, Rule, register_preset, register_rule, scan_episodes
from ._fall import Falls

__all__ = ["VShape", "pooled_within_sd"]

STILES_2004 = (
    "Stiles, W. B., Glick, M. J., Osatuke, K., Hardy, G. E., Shapiro, D. A., "
    "Agnew-Davies, R., Rees, A., & Barkham, M. (2004). Patterns of alliance development "
    "and the rupture-repair hypothesis: Are productive relationships U-shaped or "
    "V-shaped? Journal of Counseling Psychology, 51(1), 81-92."
)
STRAUSS_2006 = (
    "Strauss, J. L., Hayes, A. M., Johnson, S. L., Newman, C. F., Brown, G. K., "
    "Barber, J. P., Laurenceau, J.-P., & Beck, A. T. (2006). Early alliance, alliance "
    "ruptures, and symptom change in a nonrandomized trial of cognitive therapy for "
    "avoidant and obsessive-compulsive personality disorders. Journal of Consulting and "
    "Clinical Psychology, 74(2), 337-345."
)
GUMZ_2012 = (
    "Gumz, A., Brähler, E., Geyer, M., & Erices, R. (2012). Crisis-repair sequences - "
    "considerations on the classification and assessment of breaches in the therapeutic "
    "relationship. BMC Medical Research Methodology, 12, 10."
)


def pooled_within_sd(panel: Panel, clients: np.ndarray) -> float:
    """Pooled within-client SD of the given clients' observed scores.

    ``sqrt(sum_i (n_i - 1) s_i^2 / sum_i (n_i - 1))`` over clients with at
    least two scores, where ``s_i`` is client *i*'s sample SD. Summed with
    :func:`math.fsum`, so the value does not depend on client order.
    Returns NaN when no client has two scores.
    """
    _, sd = panel.client_mean_sd
    n = panel.n_obs[clients]
    s = sd[clients]
    ok = n >= 2
    df = int((n[ok] - 1).sum())
    if df == 0:
        return math.nan
    return math.sqrt(math.fsum(((n[ok] - 1) * s[ok] ** 2).tolist()) / df)


@register_rule(
    "vshape",
    family="vshape",
    summary=(
        "A fall of at least k SD within max_decline sessions, then a return to "
        "within tol*k SD of the pre-rupture level (repaired) or none (unresolved)."
    ),
    reference="alliance_ts (parameterised family spanning Stiles 2004, Strauss 2006, Gumz 2012)",
)
@dataclass(frozen=True)
class VShape(Rule):
    r"""Drop-and-return ("V") episodes with a threshold in SD units.

    Parameters
    ----------
    k : float, default 2.0
        Drop threshold in SD units: a rupture needs a fall of at least
        :math:`\theta = k\sigma` below the reference level.
    sd : {"max", "client", "pooled"}, default "max"
        What :math:`\sigma` is. ``"client"``: the client's own sample SD of
        all observed scores (ddof=1). ``"pooled"``: the pooled within-client
        SD of all analysed clients (``pooled_sd``). ``"max"``: the larger
        (stricter) of the two, as Gumz et al. (2012) recommend.
    reference : {"previous", "mean_others"}, default "previous"
        The pre-rupture level the fall is measured from. ``"previous"``: the
        score at the top of the fall (the last session before it).
        ``"mean_others"``: the mean of the client's other observed scores
        (all but the session being tested).
    max_decline : int, default 3
        Most sessions a fall may take to reach the threshold (1 = a one-session
        drop, as in a strict V; Gumz et al. saw declines of up to six).
    tol : float, default 0.5
        Return tolerance as a share of the threshold: the alliance has
        returned when a score is at least :math:`pre - tol \cdot \theta`.
        0 means back to the full pre-rupture level. Must be in [0, 1).
    repair_within : int or None, default None
        Most observed sessions from the trough to the repair. 1 = the very
        next session (a strict V); None = any later session.
    min_sd : float or None, default None
        Floor for :math:`\sigma` in score units (e.g. half a scale point).
    pooled_sd : float or None, default None
        The pooled within-client SD. None: estimated from all analysed
        clients of the call (so one client's result depends on the others;
        NaN when no client has two scores); give a value (e.g. from a norm
        sample) to fix it.

    Notes
    -----
    Let :math:`x_1, \dots, x_n` be a client's observed scores in session order
    (missed sessions are skipped: "previous" and "next" mean the neighbouring
    *observed* sessions) and :math:`\theta = k\sigma`.

    **Onset.** A rupture is confirmed at session :math:`i` (never the first)
    when the scores fall into :math:`i` without rising,
    :math:`x_p \ge x_{p+1} \ge \dots \ge x_i` with :math:`x_p > x_i` and
    :math:`1 \le i - p \le` ``max_decline`` (:math:`p` is the earliest such
    session, i.e. the highest point of the fall within ``max_decline``
    sessions), and the fall reaches the threshold:

    * ``reference="previous"``: :math:`x_p - x_i \ge \theta`, with
      :math:`pre = x_p`;
    * ``reference="mean_others"``: :math:`\bar x_{(-i)} - x_i \ge \theta`,
      with :math:`pre = \bar x_{(-i)}`, the mean of all scores but
      :math:`x_i`.

    The first such :math:`i` in session order counts. Requiring a real fall
    (:math:`x_p > x_i`) matters for ``"mean_others"``: without it, the flat
    start of a rising course would lie "below the mean of the others". The episode's ``start``
    is the first session of the fall (after :math:`p`) whose score is already
    below the return level :math:`pre - tol\,\theta` defined below, so a
    multi-session decline starts where the alliance first leaves its normal
    band, and a one-session drop starts at :math:`i`.

    **Repair.** The first later session :math:`j` with
    :math:`x_j \ge pre - tol\,\theta` is the repair (``end``) if it comes at
    most ``repair_within`` observed sessions after the trough; otherwise
    (or if none comes) the rupture is unresolved. An unresolved episode
    lasts to the last session. After a repair the search resumes, so a
    client can have several episodes; they never overlap.

    **Resolution.** Scores are compared with a tolerance of a trillionth (1e-12) of
    the client's largest absolute score (:attr:`alliance_ts.panel.Block.resolution`):
    smaller differences, and an SD smaller than that, are float rounding,
    not data, so a constant course stored with rounding errors has SD 0.

    **Exclusions.** A client whose :math:`\sigma` is 0 or undefined (constant
    scores with ``sd="client"``, or fewer than two scores) is not analysed
    (``included=False`` with the reason). With ``sd="max"`` or
    ``"pooled"`` a ceiling client (constant scores) is analysed using the
    pooled SD, so a one-point dip at the ceiling is not a rupture unless it is
    large relative to the sample's session-to-session variation.

    **A property worth knowing.** With the client's own SD, a single dip of any
    depth in an otherwise flat course of :math:`n` sessions lies exactly
    :math:`\sqrt{n}` SDs below the mean of the other sessions, so with
    ``k=2`` and ``sd="client"`` such a dip is never found in courses shorter
    than 4 sessions, and always found (whatever its size) in longer ones (at
    exactly 4 sessions it lies exactly 2 SDs below, which reaches ``k``).

    **Provenance.** The idea of a V-shaped rupture-repair sequence (a marked
    fall below the client's usual level followed by a return) is from Stiles
    et al. (2004). That Stiles et al. used 2 SD and Strauss et al. (2006)
    1 SD, and the recommendation to take the stricter of the client's own and
    the between-client SD, are from Gumz et al. (2012), as are the crisis
    pattern of a multi-session decline followed by a sudden repair and the
    longest decline of six sessions. Everything else is this library's
    choice and is *not* taken from a publication: the exact onset and return
    arithmetic above, the pooled within-client SD as the between-client SD,
    the tolerance, the trough-to-repair window, the handling of missed
    sessions and the exclusions. See :func:`alliance_ts.list_rules` for the
    presets' values.

    References
    ----------
    .. [1] Stiles et al. (2004), see ``STILES_2004``.
    .. [2] Strauss et al. (2006), see ``STRAUSS_2006``.
    .. [3] Gumz et al. (2012), see ``GUMZ_2012``.
    """

    k: float = number(2.0, "drop threshold in SD units", low=0, low_open=True)
    sd: str = choice("max", "the SD: the larger of the two ('max'), the client's own ('client') or the pooled "
                     "within-client one ('pooled')", ("max", "client", "pooled"))
    reference: str = choice("previous", "pre-rupture level: the score at the top of the fall ('previous') or the "
                            "mean of the client's other scores ('mean_others')", ("previous", "mean_others"))
    max_decline: int = integer(3, "most sessions a fall may take", low=1)
    tol: float = number(0.5, "return tolerance, as a share of the threshold", low=0, high=1, high_open=True)
    repair_within: int | None = integer(None, "most observed sessions from the trough to the repair "
                                        "(None: any later session)", low=1, allow_none=True)
    min_sd: float | None = number(None, "floor of the SD, in score units", low=0, low_open=True, allow_none=True)
    pooled_sd: float | None = number(None, "pooled within-client SD in score units (None: estimated from the "
                                     "analysed clients)", low=0, allow_none=True, allow_nan=True)

    strictness = "k"
    detects = ("v",)
    sample_dependent = ("pooled_sd",)
    needs_moments = True
    trusted_output = True
    client_columns = {"sd": "float64", "threshold": "float64"}

    @property
    def invariances(self) -> tuple[str, ...]:  # type: ignore[override]
        """Translation always; scaling unless an absolute ``min_sd`` floor is set."""
        return ("translation",) if self.min_sd is not None else ("translation", "scaling")

    def needs_sample(self) -> bool:
        """The pooled SD is estimated unless given or unused (``sd="client"``)."""
        return self.sd != "client" and self.pooled_sd is None

    def prepare(self, panel: Panel, clients: np.ndarray) -> VShape:
        if self.sd == "client" or self.pooled_sd is not None:
            return self
        return replace(self, pooled_sd=pooled_within_sd(panel, clients))

    def label(self, block: Block) -> BlockResult:
        x, n = block.x, block.n
        m, length = x.shape
        if block.mean is None or block.sd is None:  # pragma: no cover - needs_moments asks for them
            raise RuntimeError("vshape needs the blocks' client means and SDs")
        mean, client_sd = block.mean, block.sd
        pooled = np.nan if self.pooled_sd is None else float(self.pooled_sd)
        if self.sd == "client":
            sigma = client_sd
        elif self.sd == "pooled":
            sigma = np.full(m, pooled)
        else:
            sigma = np.fmax(client_sd, pooled)
            sigma = np.where(n >= 2, sigma, np.nan)
        if self.min_sd is not None:
            sigma = np.fmax(sigma, float(self.min_sd))
        eps = block.resolution
        # an SD within the scores' resolution is float rounding of constant scores
        usable = np.isfinite(sigma) & (sigma > eps)
        reason = np.full(m, "", dtype=object)
        reason[~usable & (n < 2)] = "fewer than 2 observed scores: no SD"
        reason[~usable & (n >= 2)] = (
            "SD is 0 (constant scores): the threshold is in SD units"
            if self.sd == "client"
            else "pooled SD is 0 or undefined: the threshold is in SD units"
        )
        theta = np.where(usable, self.k * sigma, np.inf)

        falls = Falls(x, self.max_decline, eps)
        top = falls.top
        if self.reference == "previous":
            pre = top
        else:
            total = mean * n
            with np.errstate(invalid="ignore", divide="ignore"):
                pre = (total[:, None] - x) / (n[:, None] - 1)
        with np.errstate(invalid="ignore"):
            onset = (falls.lag >= 1) & (top - x > eps[:, None]) & (pre - x >= theta[:, None] - eps[:, None])
            onset &= usable[:, None]
            ret = pre - self.tol * theta[:, None]
        start = falls.start(ret)
        scanned = scan_episodes(x, n, onset, start, pre, ret, self.repair_within, eps)
        return BlockResult.from_scan(
            block,
            scanned,
            reason=reason,
            client_extra={
                "sd": np.where(usable, sigma, np.nan),
                "threshold": np.where(usable, theta, np.nan),
            },
        )


register_preset(
    "stiles2004",
    VShape,
    dict(k=2.0, sd="client", reference="mean_others", max_decline=1, tol=0.5, repair_within=1),
    summary=(
        "V-shaped sequence: one session at least 2 client-SDs below the mean of the "
        "client's other sessions, back up (within 1 SD) at the next session."
    ),
    reference=STILES_2004
    + " Threshold (2 SD) as reported by Gumz et al. (2012); SD basis, reference level, "
    "tolerance and repair window (repair_within) are alliance_ts's reading (unverified).",
)

register_preset(
    "strauss2006",
    VShape,
    dict(k=1.0, sd="client", reference="mean_others", max_decline=1, tol=0.5, repair_within=1),
    summary=(
        "As stiles2004 with a 1-SD threshold (the less strict variant attributed to "
        "Strauss et al. 2006)."
    ),
    reference=STRAUSS_2006
    + " Threshold (1 SD) as reported by Gumz et al. (2012); every other detail is "
    "alliance_ts's reading of 'most similar to Stiles et al.' (unverified).",
)

register_preset(
    "gumz2012",
    VShape,
    dict(k=2.0, sd="max", reference="previous", max_decline=6, tol=0.5, repair_within=None),
    summary=(
        "Fall of at least 2 SD (the larger of the client's SD and the pooled "
        "within-client SD) over up to 6 sessions, repaired at any later session."
    ),
    reference=GUMZ_2012
    + " Stricter-of-two SD, 2-SD threshold and six-session declines from the paper; "
    "reference level, tolerance and repair window (repair_within) are alliance_ts's choices.",
)
