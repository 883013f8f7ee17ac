"""Plain per-client reference implementations of the rules.

Written directly from the criteria in the rules' docstrings, one client at a
time with ordinary Python loops, so that the vectorised implementations can
be checked against something written differently.
"""

from __future__ import annotations

import math
import statistics

from scipy import stats


def _sd(values):
    return statistics.stdev(values) if len(values) >= 2 else math.nan


def vshape_reference(
    x,
    *,
    k=2.0,
    sd="max",
    reference="previous",
    max_decline=3,
    tol=0.5,
    repair_within=None,
    min_sd=None,
    pooled_sd=None,
):
    """Episodes of one client as (start, trough, end or None, pre) positions.

    Returns None when the client cannot be analysed (SD 0 or undefined).
    """
    n = len(x)
    own = _sd(x)
    if sd == "client":
        sigma = own
    elif sd == "pooled":
        sigma = pooled_sd
    else:
        sigma = max(v for v in (own, pooled_sd) if v is not None and not math.isnan(v)) if n >= 2 else math.nan
    if min_sd is not None and (sigma is None or math.isnan(sigma) or sigma < min_sd):
        sigma = min_sd
    if sigma is None or math.isnan(sigma) or sigma <= 0:
        return None
    theta = k * sigma

    def onset(i):
        p = i
        while p - 1 >= 0 and i - (p - 1) <= max_decline and x[p - 1] >= x[p]:
            p -= 1
        if p == i or not x[p] > x[i]:
            return None
        pre = x[p] if reference == "previous" else (sum(x) - x[i]) / (n - 1)
        if pre - x[i] < theta:
            return None
        ret = pre - tol * theta
        start = min(q for q in range(p + 1, i + 1) if x[q] < ret)
        return start, pre, ret

    episodes = []
    i = 1
    while i < n:
        found = onset(i)
        if found is None:
            i += 1
            continue
        start, pre, ret = found
        trough, end = i, None
        for q in range(i + 1, n):
            if x[q] >= ret:
                end = q
                break
            if x[q] < x[trough]:
                trough = q
        if end is not None and (repair_within is None or end - trough <= repair_within):
            episodes.append((start, trough, end, pre))
            i = end + 1
            continue
        tail = x[i:]
        trough = i + tail.index(min(tail))
        episodes.append((start, trough, None, pre))
        break
    return episodes


def sudden_loss_verdicts(sessions, scores, *, cutoff, pct=0.25, alpha=0.05, adjust=True, critical_value=2.776):
    """{post session: True / False / None (untestable)} for every interval of the span."""
    xs = {s: v for s, v in zip(sessions, scores) if not math.isnan(v)}
    if not xs:
        return {}
    verdict = {}
    for n in range(min(xs), max(xs)):
        a, b = xs.get(n), xs.get(n + 1)
        pre = [xs[s] for s in (n - 2, n - 1, n) if s in xs]
        post = [xs[s] for s in (n + 1, n + 2, n + 3) if s in xs]
        if a is None or b is None or len(pre) < 2 or len(post) < 2:
            verdict[n + 1] = None
            continue
        c1 = a - b >= cutoff
        c2 = pct is None or a - b >= pct * a
        df = len(pre) + len(post) - 2
        t = abs(stats.t.ppf(alpha / 2, df)) if adjust else critical_value
        sp = math.sqrt(((len(pre) - 1) * statistics.variance(pre) + (len(post) - 1) * statistics.variance(post)) / df)
        c3 = statistics.fmean(pre) - statistics.fmean(post) > t * sp
        verdict[n + 1] = bool(c1 and c2 and c3)
    return verdict


def sudden_loss_episodes(sessions, scores, verdicts, repair="full"):
    """Episodes (start, trough, end or None, pre) as *session numbers*."""
    obs = [(s, v) for s, v in zip(sessions, scores) if not math.isnan(v)]
    episodes = []
    i = 1
    while i < len(obs):
        s, v = obs[i]
        if not verdicts.get(s):
            i += 1
            continue
        pre = obs[i - 1][1]
        ret = pre if repair == "full" else v + (pre - v) / 2
        trough, end = i, None
        for q in range(i + 1, len(obs)):
            if obs[q][1] >= ret:
                end = q
                break
            if obs[q][1] < obs[trough][1]:
                trough = q
        episodes.append((s, obs[trough][0], None if end is None else obs[end][0], pre))
        if end is None:
            break
        i = end + 1
    return episodes
