"""A Methods paragraph written from a :class:`~alliance_ts.Detection`.

:func:`methods_text` (also ``res.methods()``) describes, in plain English
and with the numbers of the result, what was done: the rule and its exact
criterion, which parts of it are published and which are this library's
choices, every parameter, the inclusion rule and how many clients it
excluded and why, how missed sessions and missing-value codes were treated,
the score scale, the session dates, and the references to cite. The text is
deterministic: the same result gives the same words.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from .errors import InvalidInputError, Problem
from .result import Detection, group_column

__all__ = ["library_citation", "methods_text"]

SMYTH_2004 = (
    "Smyth, G. K. (2004). Linear models and empirical Bayes methods for assessing differential "
    "expression in microarray experiments. Statistical Applications in Genetics and Molecular Biology, 3(1), 3."
)
JACKSON_2005 = (
    "Jackson, B., et al. (2005). An algorithm for optimal partitioning of data on an interval. "
    "IEEE Signal Processing Letters, 12(2), 105-108."
)
BENJAMINI_1995 = (
    "Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery rate: A practical and powerful "
    "approach to multiple testing. Journal of the Royal Statistical Society: Series B, 57(1), 289-300."
)
TRUONG_2020 = (
    "Truong, C., Oudre, L., & Vayatis, N. (2020). Selective review of offline change point detection "
    "methods. Signal Processing, 167, 107299."
)
EUBANKS_2018 = (
    "Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A meta-analysis. "
    "Psychotherapy, 55(4), 508-519."
)


def library_citation(version: str) -> str:
    """How to cite this library: ``alliance_ts (version X) [Computer software].``"""
    return f"alliance_ts (version {version or 'unknown'}) [Computer software]."


def methods_text(result: Detection) -> str:
    """A paragraph for the Methods section of a paper, with a list of references.

    Written from the result alone, so it states what was actually done:

    - the rule (its registered name; for a preset, which rule it is a preset
      of) and the library's one-line summary of it, quoted;
    - the exact criterion in words, for the built-in families (``vshape``
      and its presets ``stiles2004``, ``strauss2006``, ``gumz2012``;
      ``sudden_loss``; ``robust`` and ``recommended``; ``changepoint``;
      ``psq``), and which parts are published and which are this library's
      choices; for other registered rules, the registry's summary and
      reference;
    - every parameter in ``result.params`` with its value, the sample-wide
      values estimated from the data among them, and the parameters that
      differ from the rule's defaults;
    - the inclusion rule (``min_sessions``) and how many clients (courses
      of a client and rater, for rules with raters) were included and
      excluded, with each reason and its count;
    - how missed sessions were treated (not imputed; what the rule does
      with them; the label a row without a score gets), with the number of
      missed sessions within the clients' observed spans;
    - the declared missing-value codes and how many cells were recoded, or
      that none were declared;
    - the score scale checked, or the observed range and a recommendation
      to declare the scale; the answer coding for ``psq``;
    - how dated sessions were numbered;
    - the references: the rule's sources, the instrument (for a declared
      scale of :func:`~alliance_ts.list_scales`) and the library
      (:func:`library_citation`).

    Sentences that need ``result.info`` (missing codes, dates, observed
    range) are left out when it does not hold the entry (for example for a
    result of :meth:`Detection.for_rater`).

    Parameters
    ----------
    result : Detection

    Returns
    -------
    str
        The paragraph, a blank line, ``"References"`` and one reference per
        line (sorted), each starting with ``"- "``.

    Raises
    ------
    InvalidInputError
        If ``result`` is not a Detection.

    Examples
    --------
    >>> import alliance_ts as at
    >>> res = at.detect([50, 51, 50, 38, 50, 51], rule="vshape", sd="pooled", pooled_sd=1.0)
    >>> text = res.methods()
    >>> "1 of 1 client (100.0%) was included" in text
    True
    >>> text.splitlines()[-1]
    '- alliance_ts (version ...) [Computer software].'
    """
    if not isinstance(result, Detection):
        raise InvalidInputError([Problem("parameter 'result'", f"expected a Detection, got {type(result).__name__}")],
                                "alliance_ts.methods.methods_text()")
    spec = _spec(result.rule)
    family = _family(spec)
    params = dict(result.params)
    refs: list[str] = []
    sentences = [_rule_sentence(result, spec, family)]
    sentences += _criterion(family, params, spec, refs)
    sentences += _parameter_sentences(result, spec)
    sentences += _inclusion_sentences(result, spec, family)
    sentences += _missed_sentences(result, family)
    sentences += _code_sentences(result.info)
    sentences += _scale_sentences(result, family, refs)
    sentences += _date_sentences(result.info)
    references = sorted(dict.fromkeys(refs)) + [library_citation(result.version)]
    paragraph = " ".join(s for s in sentences if s)
    return paragraph + "\n\nReferences\n" + "\n".join(f"- {r}" for r in references)


# --------------------------------------------------------------------------
# the rule


def _spec(name: str) -> Any:
    from .errors import UnknownRuleError
    from .rules import get_rule

    try:
        return get_rule(name)
    except UnknownRuleError:
        return None


def _family(spec: Any) -> str:
    """The built-in family whose criterion text applies, or ``""``."""
    if spec is None:
        return ""
    from .rules.changepoint import ChangePoint
    from .rules.observer import Observer
    from .rules.psq import Psq
    from .rules.robust import RobustDrop
    from .rules.scan import Scan
    from .rules.sudden_loss import SuddenLoss
    from .rules.vshape import VShape

    for cls, name in ((VShape, "vshape"), (SuddenLoss, "sudden_loss"), (RobustDrop, "robust"),
                      (ChangePoint, "changepoint"), (Psq, "psq"), (Observer, "observer"), (Scan, "scan")):
        if spec.cls is cls:
            return name
    return ""


def _base_name(spec: Any) -> str | None:
    """For a preset, the name of the rule it bundles parameters of."""
    from .rules._base import _REGISTRY

    if spec is None or not spec.defaults:
        return None
    return next((s.name for s in _REGISTRY.values() if s.cls is spec.cls and not s.defaults), spec.family)


def _rule_sentence(result: Detection, spec: Any, family: str) -> str:
    what = {"psq": "Ruptures reported in post-session questionnaires",
            "observer": "Ruptures coded by observers of the session recordings"}.get(
        family, "Alliance ruptures in the session-by-session alliance scores")
    head = (f'{what} were identified with the rule "{result.rule}" of alliance_ts '
            f'(version {result.version or "unknown"})')
    if spec is None:
        return head + ", a rule that is not in the library's registry."
    base = _base_name(spec)
    preset = f', a preset (a named set of parameter values) of its "{base}" rule' if base else ""
    summary = spec.summary.strip()
    if not summary.endswith((".", "!", "?")):
        summary += "."
    defaults = spec.parameters()
    # parameters left at None are estimated from the data or name optional columns: not a different criterion
    changed = any(defaults.get(k) is not None and _differs(v, defaults[k]) for k, v in result.params.items())
    when = " at its default parameters (the criterion used here follows)" if changed else ""
    return f'{head}{preset}, which the library summarises{when} as "{summary}"'


def _differs(value: Any, default: Any) -> bool:
    """Whether a parameter value differs from the rule's default (numbers compared as numbers)."""
    if isinstance(value, (int, float)) and isinstance(default, (int, float)) and not isinstance(value, bool):
        return float(value) != float(default)
    return bool(value != default)


def _criterion(family: str, p: dict[str, Any], spec: Any, refs: list[str]) -> list[str]:
    if family == "vshape":
        return _vshape(p, spec.name, refs)
    if family == "robust":
        return _robust(p, spec.name, refs)
    if family == "scan":
        return _scan(p, refs)
    if family == "sudden_loss":
        return _sudden_loss(p, refs)
    if family == "changepoint":
        return _changepoint(p, refs)
    if family == "psq":
        return _psq(p, refs)
    if family == "observer":
        return _observer(p, refs)
    if spec is not None and spec.reference.strip():
        ref = spec.reference.strip()
        if not ref.lower().startswith("alliance_ts"):
            refs.append(ref)
        return [f"Its reference in the library's registry is: {ref.rstrip('.')}."]
    return []


def _sessions(k: Any, word: str = "observed session") -> str:
    return f"{_num(k)} {word}{'' if k == 1 else 's'}"


def _repair_window(p: dict[str, Any]) -> str:
    r = p.get("repair_within")
    return "" if r is None else f", provided it came within {_sessions(r)} of the trough"


def _return_level(tol: Any, what: str) -> str:
    if tol == 0:
        return "the pre-rupture level itself"
    return f"the pre-rupture level minus {_num(tol)} times {what}"


def _vshape(p: dict[str, Any], name: str, refs: list[str]) -> list[str]:
    from .rules.vshape import GUMZ_2012, STILES_2004, STRAUSS_2006

    k, sd, md = p.get("k"), p.get("sd"), p.get("max_decline")
    pooled = p.get("pooled_sd")
    pooled_text = "" if pooled is None else f" ({_num(pooled)} score units)"
    sigma = {
        "client": "the client's own SD of its observed scores",
        "pooled": f"the pooled within-client SD{pooled_text}",
        "max": f"the larger of the client's own SD of its observed scores and the pooled within-client "
               f"SD{pooled_text}",
    }.get(str(sd), f"{sd!r}")
    if p.get("min_sd") is not None:
        sigma += f", but at least {_num(p['min_sd'])} score units"
    fall = "a fall from the previous observed session" if md == 1 else \
        f"a fall without a rise over at most {_sessions(md)}"
    if p.get("reference") == "mean_others":
        level = "the mean of the client's other observed scores"
    else:
        level = "the score at the top of the fall"
    text = [
        f"A rupture was confirmed at a session (never a client's first) reached by {fall} whose score lay at "
        f"least k = {_num(k)} SDs below {level} (the pre-rupture level), the SD being {sigma}.",
        f"The episode started at the first session of the fall below the return level "
        f"({_return_level(p.get('tol'), 'the threshold of k SDs')}) and was repaired at the first later session "
        f"at or above that level{_repair_window(p)}; otherwise it was unresolved and lasted to the client's last "
        "session. After a repair the search resumed, so a client could have several episodes, which never overlap.",
    ]
    if name == "stiles2004":
        refs += [STILES_2004, GUMZ_2012]
        text.append("The 2-SD threshold attributed to Stiles et al. (2004) is as reported by Gumz et al. (2012); "
                    "the SD basis (the client's own SD), the reference level (the mean of the client's other "
                    "sessions), the repair at the next observed session, the tolerance and the handling of missed "
                    "sessions are the library's reading of the rule, not verified against the original paper.")
    elif name == "strauss2006":
        refs += [STRAUSS_2006, STILES_2004, GUMZ_2012]
        text.append("The 1-SD threshold attributed to Strauss et al. (2006), who described their method as most "
                    "similar to that of Stiles et al. (2004), is as reported by Gumz et al. (2012); every other "
                    "detail is the library's reading of the rule, not verified against the original papers.")
    elif name == "gumz2012":
        refs += [GUMZ_2012, STILES_2004]
        text.append("The 2-SD threshold, the stricter (larger) of the client's own and the between-client SD and "
                    "declines over up to six sessions follow Gumz et al. (2012); the pooled within-client SD as the "
                    "between-client SD, the previous-session reference level, the tolerance, the repair at any "
                    "later session and the handling of missed sessions are the library's choices.")
    else:
        refs += [STILES_2004, STRAUSS_2006, GUMZ_2012]
        text.append("The V-shaped rupture-repair sequence is from Stiles et al. (2004); the 2-SD (Stiles et al., "
                    "2004) and 1-SD (Strauss et al., 2006) thresholds and taking the stricter of the client's own "
                    "and the between-client SD are as reported by Gumz et al. (2012); the exact onset and return "
                    "arithmetic, the pooled within-client SD as the between-client SD, the tolerance, the "
                    "trough-to-repair window and the handling of missed sessions are the library's choices.")
    return text


def _robust(p: dict[str, Any], name: str, refs: list[str]) -> list[str]:
    md, window, dip, noise = p.get("max_decline"), p.get("window"), p.get("dip"), p.get("noise")
    alpha, prior_df, trim = p.get("alpha"), p.get("prior_df"), p.get("trim")
    dip_text = (f", or the dip of that score below the average of the pre-rupture level and the mean of the next "
                f"{_sessions(p.get('after'), 'observed score')}," if dip else "")
    tests = "(2(n - 1))" if dip else "(n - 1)"
    over = "its n - 1 candidate sessions and the two statistics" if dip else "its n - 1 candidate sessions"
    dist = {
        "moderated": f"Student's t distribution with nu + {_num(prior_df)} degrees of freedom (nu those of the "
                     "client's own noise estimate)",
        "client": "Student's t distribution with the degrees of freedom of the client's own noise estimate",
    }.get(str(noise), "the standard normal distribution")
    own = "the trimmed SD of the client's lag-1 score differences"
    level = {
        "client": own,
        "pooled": "the trimmed SD of the lag-1 score differences pooled over all analysed clients",
        "max": "the larger of the client's own and the pooled trimmed SD of lag-1 score differences",
        "moderated": f"{own} moderated towards the sample-wide pooled one with {_num(prior_df)} prior degrees of "
                     "freedom (the moderated variance of Smyth, 2004)",
    }.get(str(noise), f"{noise!r}")
    if p.get("min_noise") is not None:
        level += f", but at least {_num(p['min_noise'])} score units"
    trend = ("; what the client's steady trend (its trimmed mean difference, shrunk for short courses) "
             "contributes to each statistic was subtracted" if p.get("center") == "trend" else "")
    text = [
        f"A rupture was confirmed at a session reached by a fall without a rise over at most {_sessions(md)} when "
        f"the fall from the pre-rupture level (the mean of the {_sessions(window, 'observed score')} up to the top "
        f"of the fall) to the session's score{dip_text} reached c times the SD of that statistic, where c is the "
        f"upper alpha / {tests} quantile of {dist} for a client with n observed scores: a Bonferroni bound over "
        f"{over}, so that a client without a rupture has a chance of about alpha = {_num(alpha)} of a false episode "
        "under Gaussian session noise.",
        "The SDs of the statistics follow from the client's noise level through a first-order autoregressive "
        f"noise model with a sample-wide autocorrelation; the noise level is {level}, a trimmed SD dropping about "
        f"{_num(100 * float(trim or 0))}% of the differences at each end, rescaled to a normal SD{trend}.",
        f"The episode started at the first session of the fall below the return level "
        f"({_return_level(p.get('tol'), 'the smaller of the threshold c x SD and the fall')}) and was repaired at "
        f"the first later session at or above that level{_repair_window(p)}; otherwise it was unresolved and "
        "lasted to the client's last session. After a repair the search resumed.",
    ]
    if noise == "moderated":
        refs.append(SMYTH_2004)
    chosen = ("; its parameter values were chosen on the library's accuracy benchmark of simulated courses"
              if name == "recommended" else "")
    standard = ["the trimmed SD"] + (["the moderated variance"] if noise == "moderated" else []) + [
        "the Bonferroni bound"]
    text.append(f"This rule is the library's own design, not a published criterion{chosen}; {_join(standard)} are "
                "standard statistics.")
    return text


def _scan(p: dict[str, Any], refs: list[str]) -> list[str]:
    w, trend_from, phi = p.get("max_width"), p.get("trend_from"), p.get("phi")
    s0, d0 = p.get("noise"), p.get("prior_df")
    noise = (f"moderated towards a prior SD of lag-1 differences of {_num(s0)} score units with {_num(d0)} prior "
             "degrees of freedom, both estimated from the analysed clients' own noise estimates by the "
             "empirical-Bayes method of moments of Smyth (2004)"
             if s0 is not None and math.isfinite(float(s0)) and d0 else "the client's own (no prior could be "
             "estimated from the data)")
    if p.get("min_noise") is not None:
        noise += f", but at least {_num(p['min_noise'])} score units (SD of lag-1 differences)"
    level = (f"the false-discovery rate over the analysed clients was controlled at {_num(p.get('fdr'))} "
             f"(Benjamini & Hochberg, 1995; p-value cut-off {_num(p.get('fdr_cut'))})"
             if p.get("fdr") is not None else
             f"a client was flagged when p <= alpha = {_num(p.get('alpha'))}")
    if p.get("fdr") is not None:
        refs.append(BENJAMINI_1995)
    refs.append(SMYTH_2004)
    return [
        "Each client's observed scores (missed sessions left out) were modelled as a level (and, for courses of "
        f"{_sessions(trend_from, 'observed score')} or more, a linear trend) plus first-order autoregressive "
        f"noise with the sample-wide autocorrelation {_num(phi)} (estimated from consecutive lag-1 differences "
        "with a robust correlation), minus a rupture of one of these shapes: a dip of 1 to "
        f"{_sessions(w, 'session')}, a decline deepening over 2 to {_num(w)} sessions and repaired at once, a "
        f"sudden drop recovering linearly over 2 to {_num(w)} sessions, or a drop lasting to the last session. "
        "Every position of every shape was fitted by generalised least squares; its statistic was the fitted "
        "depth over its standard error (a moderated t statistic), the residual variance once the shape was "
        f"fitted being {noise}.",
        "The client's p-value was the chance that a rupture-free course of the same length shows a largest "
        "statistic at least as large, 1 - (1 - q)^m with q the one-sided t tail of the statistic and m the "
        "effective number of independent shapes, measured by simulating 10,000 rupture-free courses of that "
        f"length under the fitted noise model (interpolated for courses of more than 32 scores); {level}.",
        "The best-fitting shape of a flagged client was its first episode (shapes whose lowest score was not "
        "below the mean of the up to 3 scores before them were passed over): it started at the shape's first "
        "session and was repaired at the session after it; a drop lasting to the end was unresolved unless the "
        "scores came back to the pre-rupture level (the mean of the up to 3 scores before it) later, where it was "
        "repaired. "
        "Further episodes were the best-fitting shapes not overlapping those found, after the fitted drops were "
        "removed from the scores, while they reached the same critical value.",
        "This rule is the library's own design, not a published criterion; the generalised least-squares "
        "(matched-filter) statistic and the moderated variance are standard statistics.",
    ]


def _sudden_loss(p: dict[str, Any], refs: list[str]) -> list[str]:
    from .rules.sudden_loss import LUTZ_2013, TANG_1999, WIEDEMANN_2020

    refs += [TANG_1999, WIEDEMANN_2020]
    if p.get("reliability") is not None:
        crit1 = (f"the reliable change index 1.96 x sqrt(2) x SD x sqrt(1 - {_num(p['reliability'])}) = "
                 f"{_num(p.get('cutoff'))} score units, with SD = {_num(p.get('sd'))} (the SD of the analysed "
                 "clients' first observed scores unless given)")
    else:
        crit1 = f"{_num(p.get('cutoff'))} score units"
    pct = p.get("pct")
    crit2 = ("(2) no criterion on the drop as a share of the score at session n applied (pct = None)"
             if pct is None else f"(2) the drop was at least {_num(pct)} times the score at session n")
    if p.get("adjust", True):
        refs.append(LUTZ_2013)
        crit3 = (f"t times their pooled SD, t being the two-tailed critical value of Student's t (alpha = "
                 f"{_num(p.get('alpha'))}) for the n_pre + n_post - 2 degrees of freedom of the scores available "
                 "(the missing-data adjustment of Lutz et al., 2013)")
    else:
        crit3 = f"{_num(p.get('critical_value'))} times their pooled SD"
    back = "the score at session n" if p.get("repair", "full") == "full" else \
        "the midpoint between the scores at sessions n and n + 1"
    return [
        f"A sudden loss was identified between consecutive sessions n and n + 1 when (1) the drop from session n "
        f"to n + 1 was at least {crit1}; {crit2}; and (3) the mean of the available scores of sessions n - 2 to n "
        f"exceeded that of sessions n + 1 to n + 3 by more than {crit3}.",
        "An interval was tested only when both of its sessions were observed (no bridging of a missed session) and "
        "each window held at least two scores; otherwise it was untestable, and a client without any testable "
        "interval was not analysed.",
        f"Each sudden loss opened an episode at session n + 1, with the score at session n as the pre-rupture "
        f"level; it was repaired at the first later observed session with a score of at least {back}, and "
        "otherwise unresolved; a further sudden loss inside an open episode deepened it.",
        "The three criteria, their windows and critical values are those of Tang and DeRubeis (1999) as computed "
        "by the R package suddengains (Wiedemann et al., 2020), applied here to drops of the alliance; the "
        "construction of episodes with repairs is the library's extension.",
    ]


def _changepoint(p: dict[str, Any], refs: list[str]) -> list[str]:
    refs += [JACKSON_2005, TRUONG_2020, SMYTH_2004]
    penalty, scale = p.get("penalty"), p.get("penalty_scale")
    times = "" if scale is None or scale == 1 else f"{_num(scale)} x "
    if penalty == "calibrated":
        pen = (f"the BIC penalty 2 s^2 ln(n) multiplied by {_num(scale)}, the smallest of 29 multipliers "
               f"(0.25 to 32) at which at most {_num(p.get('fpr'))} of simulated rupture-free twins of the analysed "
               f"clients got an episode (random seed {_num(p.get('rng'))})")
    elif penalty == "bic":
        pen = f"the penalty {times}2 s^2 ln(n) (the Bayesian information criterion)"
    elif penalty == "aic":
        pen = f"the penalty {times}4 s^2 (the Akaike information criterion)"
    else:
        pen = f"a penalty of {_num(penalty)} (in units of the sum of squared errors)"
    noise = p.get("noise")
    pooled = "" if noise is None else f" of {_num(noise)} score units"
    text = [
        "Each client's observed scores were split into segments of constant mean by the exact minimiser of the "
        "sum of squared errors plus a penalty per change point (optimal partitioning; Jackson et al., 2005), with "
        f"at least {_sessions(p.get('min_size'), 'score')} per segment and {pen}, where n is the client's number "
        "of observed scores and s its noise SD: the trimmed SD of its lag-1 score differences divided by sqrt(2), "
        f"moderated towards the pooled noise SD{pooled} with {_num(p.get('prior_df'))} prior degrees of freedom "
        "(Smyth, 2004).",
        f"A segment whose mean lay at least {_num(p.get('min_drop'))} noise SDs below the previous segment's mean "
        "(the pre-rupture level) started a rupture at its first score; the first later segment with a mean of at "
        f"least {_return_level(p.get('tol'), 'that threshold')} was the repair, at its first score; otherwise the "
        "rupture was unresolved. After a repair the search resumed.",
        "Reading rupture episodes off change points, "
        + _join(["the moderated noise SD", "the thresholds"]
                + (["the calibration of the penalty"] if penalty == "calibrated" else []))
        + " are the library's design; the segmentation is standard optimal partitioning (reviewed by Truong, "
        "Oudre & Vayatis, 2020).",
    ]
    return text


def _psq(p: dict[str, Any], refs: list[str]) -> list[str]:
    refs.append(EUBANKS_2018)
    items = [label for key, label in (("rupture", "the rupture (tension or conflict) item"),
                                      ("withdrawal", "the withdrawal (accommodating or avoiding) item"))
             if p.get(key) is not None]
    which = " or ".join(items) if items else "a rupture item"
    also = ", or reported no rupture" if p.get("repair", "resolved_or_absent") == "resolved_or_absent" else ""
    rater = (f"Each rater's answers (column {p['rater']!r}) were labelled separately. "
             if p.get("rater") is not None else "")
    return [
        f"{rater}Answers to the Post-Session Questionnaire were coded {_num(p.get('low'))} (\"Not at all\") to "
        f"{_num(p.get('high'))} (\"Very much\"). Over the sessions with at least one answer, a session reported a "
        f"rupture when {which} was answered at option rank {_num(p.get('rupture_at'))} or higher (rank 1 = \"Not "
        "at all\"); outside an episode such a session opened one, repaired within the session when the rupture "
        f"was also rated resolved (rank {_num(p.get('resolved_at'))} or higher). An open episode was repaired at "
        f"the first later session that reported the rupture and rated it resolved{also}; an episode still open at "
        "the last session was unresolved.",
        "The items and their answer scale are those of the questionnaire as reproduced by Eubanks et al. (2018); "
        "the thresholds, the repair rule and the construction of multi-session episodes are the library's "
        "choices, not a published scoring rule.",
    ]


def _observer(p: dict[str, Any], refs: list[str]) -> list[str]:
    from .rules.observer import EUBANKS_2019

    refs.append(EUBANKS_2019.split("; manual")[0] + ".")
    coder = (f"Each coder's codes (column {p['coder']!r}) were labelled separately. "
             if p.get("coder") is not None else "")
    minutes = _num(p.get("segment_minutes", 5.0))
    unit = (f"Sessions were coded in segments (segment_minutes = {minutes}, which only sets the reported minutes "
            "coded); a session's marker counts were added over its coded segments (a segment with at least one "
            "marker or strategy cell filled in; empty cells in a coded segment counted as not marked). "
            if p.get("segment") is not None else "Each row of the codes was one session. ")
    kinds = _join([k for k in ("withdrawal", "confrontation") if p.get(k) is not None])
    sig = (f" and its highest rupture significance rating was {_num(p['significance_at'])} or higher"
           if p.get("significance_at") is not None else "")
    by = p.get("resolved_by", "auto")
    if by == "auto" and p.get("resolution") is None:
        by = "rating"
    if by == "auto" and p.get("resolved") is None:
        by = "strategies"
    rating = (f"its resolution rating was {_num(p.get('resolved_at'))} or higher (ratings coded "
              f"{_num(p.get('rating_low'))} to {_num(p.get('rating_high'))})")
    strategy = "a resolution strategy was coded in the segment of the last rupture marker or later"
    resolved = {"rating": rating, "strategies": strategy,
                "auto": f"{rating}, or, in sessions without that rating, {strategy}"}[by]
    if p.get("resolved") is None and p.get("resolution") is None:
        resolved = "never (neither a resolution rating nor resolution strategies were coded)"
    also = ", or had no rupture" if p.get("repair", "resolved_or_absent") == "resolved_or_absent" else ""
    return [
        f"{coder}{unit}A coded session had a rupture when it held at least {_num(p.get('markers_at'))} "
        f"rupture marker(s) ({kinds} markers counted together){sig}, and the rupture was resolved within the "
        f"session when {resolved}. "
        "Outside an episode such a session opened one (repaired within the session when resolved); an open "
        f"episode was repaired at the first later coded session whose rupture was resolved{also}; an episode "
        "still open at the last coded session was unresolved. Sessions that were not coded were skipped.",
        "The codes were taken to follow the Rupture Resolution Rating System (validation: Eubanks et al., 2019); "
        "the session and resolution criteria and the construction of multi-session episodes are the library's "
        "choices, not a published scoring rule.",
    ]


# --------------------------------------------------------------------------
# parameters, inclusion, missing data, scale, dates

_NOT_RULE = ("scale", "min_sessions", "rater_selected", "coder_selected")


def _parameter_sentences(result: Detection, spec: Any) -> list[str]:
    p = result.params
    shown = [f"{k} = {_value(v)}" for k, v in p.items() if k not in _NOT_RULE]
    if not shown:
        return []
    out = [f"The rule's parameters were {_join(shown)}."]
    if spec is None:
        return out
    from .params import parameters

    meaning = {q.name: re.sub(r"(,\s*a number)?\s*\(None:[^)]*\)", "", q.meaning) for q in parameters(spec.cls)}
    estimated = [k for k in getattr(spec.cls, "sample_dependent", ()) if p.get(k) is not None]
    if estimated:
        parts = [f"{k} ({meaning[k]})" if meaning.get(k) else k for k in estimated]
        head = "The sample-wide value" if len(parts) == 1 else "The sample-wide values"
        verb = "was" if len(parts) == 1 else "were"
        out.append(f"{head} {_join(parts)} {verb} estimated from the analysed clients unless given.")
    defaults = spec.parameters()
    # values computed from others: sudden_loss' cut-off from the reliability
    derived = {"cutoff"} if p.get("reliability") is not None else set()
    changed = [f"{k} = {_value(p[k])} (default {_value(d)})" for k, d in defaults.items()
               if k in p and k not in derived and not (d is None and k in estimated) and not _same(p[k], d)]
    if changed:
        whose = "preset's" if spec.defaults else "rule's"
        out.append(f"Parameters that differ from the {whose} defaults: {_join(changed)}.")
    return out


def _inclusion_sentences(result: Detection, spec: Any, family: str) -> list[str]:
    c = result.clients
    unit = {"psq": "sessions with answers", "observer": "coded sessions"}.get(family, "observed scores")
    if spec is not None:
        try:
            unit = spec.cls(**spec.defaults).reads().unit
        except TypeError:  # a function rule with a required parameter
            pass
    key = group_column(c)
    rated = key is not None
    noun = ("course", "courses") if rated else ("client", "clients")
    out = []
    min_sessions = result.params.get("min_sessions")
    if min_sessions is not None:
        out.append(f"{noun[1].capitalize()} with fewer than {_num(min_sessions)} {unit} were not analysed "
                   f"(min_sessions = {_num(min_sessions)}).")
    n = len(c)
    n_in = int(c["included"].sum())
    total = f"{n} {noun[0] if n == 1 else noun[1]}"
    if rated:
        n_clients = c["client"].nunique()
        raters = _join([str(r) for r in pd.unique(c[key])])
        plural = "s" if n_clients != 1 else ""
        what = "codes from one coder" if key == "coder" else "answers from one rater"
        out.append(f"A course is one client's {what} ({n_clients} client{plural}; "
                   f"{key}{'s' if c[key].nunique() != 1 else ''} {raters}).")
    verb = "was" if n_in == 1 else "were"
    text = f"Altogether, {n_in} of {total} ({_pct(n_in, n)}) {verb} included"
    excluded = c.loc[~c["included"], "reason"].astype(str)
    if excluded.empty:
        return out + [text + " and none was excluded."]
    grouped = excluded.str.replace(r"\s*\(\d+\)$", "", regex=True).value_counts(sort=False)
    reasons = sorted(grouped.items(), key=lambda kv: (-kv[1], kv[0]))
    listed = "; ".join(f"{reason}: {count}" for reason, count in reasons)
    k = n - n_in
    return out + [f"{text} and {k} ({_pct(k, n)}) {'was' if k == 1 else 'were'} excluded ({listed})."]


def _observed(result: Detection, family: str) -> pd.Series:
    s = result.sessions
    if family == "psq":
        items = [col for col in ("rupture", "withdrawal", "addressed", "resolved") if col in s.columns]
        if items:
            return s[items].notna().any(axis=1)
    return s["score"].notna()


def _missed_sentences(result: Detection, family: str) -> list[str]:
    s = result.sessions
    key = group_column(s)
    keys = ["client", key] if key is not None else ["client"]
    if "missed_within" in result.info:  # counted when the tables were built (also when streamed)
        missed = int(result.info["missed_within"])
    elif (seen := s.loc[_observed(result, family), [*keys, "session"]].drop_duplicates()).empty:
        missed = 0
    else:
        span = seen.groupby(keys, sort=False)["session"].agg(["min", "max", "size"])
        missed = int((span["max"] - span["min"] + 1 - span["size"]).sum())
    what = {"psq": "questionnaire", "observer": "coded segment"}.get(family, "score")
    where = "courses" if key is not None else "clients"
    count = (f"none within the {where}' observed spans" if missed == 0 else
             f"{missed} within the {where}' observed spans, from the first to the last session with a {what}")
    if family == "observer":
        policy = ("sessions that were not coded were skipped (not observed, never \"no rupture\"), so an episode "
                  "can span them, and in the session table such a row takes the label of the episode it lies "
                  "inside.")
    elif family == "psq":
        policy = ("sessions without any answer were skipped, so an episode can span them, and in the session "
                  "table such a row takes the label of the episode it lies inside.")
    elif family == "sudden_loss":
        policy = ("an interval next to a missed session was untestable, but an open episode can span one, and in "
                  "the session table a row without a score takes the label of the episode it lies inside.")
    else:
        policy = ("the rule reads each client's observed scores in session order, so the previous and next "
                  "sessions are the neighbouring observed ones and an episode can span a missed session; in the "
                  "session table a row without a score takes the label of the episode it lies inside (when the "
                  "observed sessions on both sides belong to the same episode, or after the start of an unresolved "
                  "episode) and is otherwise labelled none.")
    return [f"Missed sessions ({count}) were not imputed: {policy}"]


def _file_sentences(info: dict[str, Any]) -> list[str]:
    """The missing values declared in an SPSS file (recorded by the command line)."""
    declared = info.get("file_missing") or {}
    out = []
    for col, spec in declared.items():
        spans = [_num(r["lo"]) if r.get("lo") == r.get("hi") else f"{_num(r['lo'])} to {_num(r['hi'])}"
                 for r in spec.get("ranges", []) if isinstance(r, dict) and "lo" in r]
        if not spans:
            continue
        cells = int(spec.get("cells", 0))
        out.append(f"The data file declared {_join(spans)} as missing for {col}; {cells} "
                   f"{'cell was' if cells == 1 else 'cells were'} read as missed sessions.")
    return out


def _code_sentences(info: dict[str, Any]) -> list[str]:
    if "missing" not in info:
        return _file_sentences(info)
    codes = list(info.get("missing") or [])
    if not codes:
        return _file_sentences(info) or ["No missing-value codes were declared."]
    counts = {_key(k): int(v) for k, v in (info.get("missing_counts") or {}).items()}
    parts = [f"{counts.get(_key(code), 0)} holding {_num(code)}" for code in codes]
    total = sum(counts.get(_key(code), 0) for code in codes)
    label = "code" if len(codes) == 1 else "codes"
    cells = "cell" if total == 1 else "cells"
    return _file_sentences(info) + [
        f"The missing-value {label} {_join([_num(c) for c in codes])} {'was' if len(codes) == 1 else 'were'} "
        f"declared; {total} {cells} ({_join(parts)}) {'was' if total == 1 else 'were'} recoded as missed "
        "sessions."]


def _scale_sentences(result: Detection, family: str, refs: list[str]) -> list[str]:
    if family in ("psq", "observer"):
        return []
    label = result.params.get("scale")
    if label:
        from .scales import get_scale

        key, _, level = str(label).partition(":")
        try:
            instrument = get_scale(key)
        except KeyError:
            instrument = None
        if instrument is not None and level in ("total", "mean"):
            rng = instrument.total if level == "total" else instrument.mean
            refs.append(instrument.reference)
            kind = "total scores" if level == "total" else "item-mean scores"
            return [f"Scores were {kind} of the {instrument.name} ({instrument.items} items scored "
                    f"{_num(instrument.item_low)} to {_num(instrument.item_high)}) and were checked against their "
                    f"valid range, {_num(rng.low)} to {_num(rng.high)}; an out-of-range score would have been an "
                    "input error."]
        bounds = re.findall(r"-?[\d.]+(?:e-?\d+)?", str(label))
        shown = f"{bounds[0]} to {bounds[1]}" if len(bounds) == 2 else str(label)
        return [f"Scores were checked against the declared valid range, {shown}; an out-of-range score would "
                "have been an input error."]
    observed = result.info.get("observed_range")
    if observed is None and "observed_range" not in result.info:
        scores = result.sessions["score"].dropna()
        observed = None if scores.empty else [float(scores.min()), float(scores.max())]
    seen = "" if observed is None else f"; the observed scores ranged from {_num(observed[0])} to {_num(observed[1])}"
    return [f"No score scale was declared, so scores were not checked against a valid range{seen}. Declaring the "
            "instrument's scale (detect(..., scale=...)) is recommended: it is the only check that catches every "
            "out-of-range score."]


def _date_sentences(info: dict[str, Any]) -> list[str]:
    if not info.get("dates"):
        return []
    every = info.get("session_every")
    if every is None:
        return ["Sessions were given as dates and numbered 1, 2, 3, ... in date order within each client, so no "
                "session could be missed."]
    step = _step(every)
    return [f"Sessions were given as dates; session k was the one k - 1 steps of {step} after the client's first "
            "date (rounded to the nearest step), so gaps in attendance became missed sessions."]


# --------------------------------------------------------------------------
# formatting


def _step(every: Any) -> str:
    try:
        td = pd.Timedelta(every)
    except (TypeError, ValueError):
        return str(every)
    days = td / pd.Timedelta(days=1)
    if float(days).is_integer():
        d = int(days)
        return f"{d} day{'s' if d != 1 else ''}"
    return str(every)


def _num(v: Any) -> str:
    """A number as a paper prints it: whole numbers without a decimal point, others to 4 significant digits."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return str(v)
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(x):
        return "NaN"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}"


def _value(v: Any) -> str:
    """A parameter value: numbers as :func:`_num`, text quoted, pairs in parentheses."""
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(_value(e) for e in v) + ")"
    return _num(v)


def _same(a: Any, b: Any) -> bool:
    try:
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return bool(type(a) is type(b) and a == b) or (
            not isinstance(a, (bool, str)) and not isinstance(b, (bool, str))
            and isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b))
    except (TypeError, ValueError):
        return False


def _key(code: Any) -> Any:
    try:
        return float(code)
    except (TypeError, ValueError):
        return code


def _pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:.1f}%" if n else "0.0%"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + f" and {items[-1]}"
