"""Property checks for detection rules, built-in or your own.

:func:`check_rule` runs every property below against a rule on data drawn by
:mod:`alliance_ts.testing.strategies` and raises :class:`RuleCheckError` with
a plain-language explanation and Hypothesis' minimal failing example. For a
pytest suite, subclass :class:`RuleChecks` (one test per property).

Properties
----------
``schema``
    The tables have the contract's columns; every input row and client is
    accounted for; each episode has start <= trough, a repair after its trough
    exactly when it is "repaired", depth >= 0, a phase; the session labels
    agree with the episodes; ``included`` agrees with ``reason``.
``row_order``
    Shuffling the rows and relabelling the client ids changes nothing.
``batch``
    Labelling all clients together, one at a time, or in tiny blocks gives the
    same result (parameters the rule estimates from the whole sample, listed
    in its ``sample_dependent``, are fixed to the batch's values for the
    one-at-a-time runs).
``shift``
    Adding a constant to every session number moves every episode by it.
``no_drop``
    A constant or never-decreasing course has no episode.
``planted``
    An unmistakable planted episode (at least 10 noise SDs) of each kind the
    rule declares in ``detects`` is found (start within one session) with
    the right status.
``deterministic``
    Two runs on the same data agree.
``invariance``
    The transformations the rule declares in ``invariances`` (adding a
    constant to the scores, up to 1e6, or multiplying them by a positive
    constant) leave the episodes unchanged.
``monotone``
    A stricter value of the rule's ``strictness`` parameter never flags more
    clients. (Episode *counts* may legitimately rise: a larger threshold can
    lower the return level, so an episode ends sooner and another can start.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, HypothesisException

from .. import panel as _panel
from ..detect import detect
from ..result import LABELS, PATTERNS, PHASES
from ..rules._base import Rule, get_rule
from ..rules._function import rule_class_from_function
from . import strategies as ats

__all__ = ["PROPERTIES", "RuleCheckError", "RuleChecks", "check_rule", "resolve_rule"]

#: Hypothesis profiles: ``"ci"`` (bounded time), ``"thorough"`` (on demand) and
#: ``"quick"`` (as ci, but a failure is reported without shrinking it first).
_COMMON: dict[str, Any] = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
PROFILES = {
    "ci": settings(max_examples=20, derandomize=True, **_COMMON),
    "quick": settings(
        max_examples=20, derandomize=True, phases=[Phase.explicit, Phase.reuse, Phase.generate], **_COMMON
    ),
    "thorough": settings(max_examples=400, **_COMMON),
}

EPISODE_COLUMNS = ("client", "episode", "rule", "start", "trough", "end", "status", "depth", "pre", "phase")
SESSION_COLUMNS = ("client", "session", "score", "label", "episode")
CLIENT_COLUMNS = (
    "client", "n_sessions", "included", "reason", "n_ruptures", "n_repaired", "n_unresolved", "pattern",
)


class RuleCheckError(AssertionError):
    """A rule broke a property; the message says which, why, and on what data."""


def resolve_rule(rule: Any, params: Mapping[str, Any] | None = None) -> Rule:
    """A rule object from a registered name, a Rule class or instance, or a rule function."""
    params = dict(params or {})
    if isinstance(rule, Rule):
        if params:
            return dataclasses.replace(rule, **params)
        return rule
    if isinstance(rule, str):
        spec = get_rule(rule)
        return spec.cls(**{**spec.defaults, **params})
    if isinstance(rule, type) and issubclass(rule, Rule):
        return rule(**params)
    cls = getattr(rule, "rule_class", None)
    if cls is None and callable(rule):
        cls = rule_class_from_function(rule, getattr(rule, "__name__", "rule"))
    if cls is not None:
        return cls(**params)
    raise TypeError(f"cannot make a rule from {rule!r}")


def _run(df: pd.DataFrame, rule: Rule, **kw) -> Any:
    # generated scores are scores, never missing-data codes (a value such as 9
    # far from a client's others is the point of several properties)
    kw.setdefault("check_codes", False)
    return detect(df, rule=rule, **kw)


def _episodes(res) -> list[tuple]:
    e = res.episodes
    return [
        (r.client, int(r.start), int(r.trough), None if pd.isna(r.end) else int(r.end), str(r.status))
        for r in e.itertuples()
    ]


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(
            a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False, check_categorical=False
        )
        return True
    except AssertionError:
        return False


def _fix_sample(rule: Rule, res) -> Rule:
    """The rule with its sample-dependent parameters fixed to the batch's values."""
    fixed = {name: res.params[name] for name in rule.sample_dependent if name in res.params}
    return dataclasses.replace(rule, **fixed) if fixed else rule


# --------------------------------------------------------------------------
# the properties: each takes (rule, data) and raises RuleCheckError


def prop_schema(rule: Rule, df: pd.DataFrame) -> None:
    res = _run(df, rule)
    problems = []
    for table, cols in ((res.episodes, EPISODE_COLUMNS), (res.sessions, SESSION_COLUMNS),
                        (res.clients, CLIENT_COLUMNS)):
        missing = [c for c in cols if c not in table.columns]
        if missing:
            problems.append(f"columns {missing} are missing")
    if problems:
        raise RuleCheckError("; ".join(problems))
    if len(res.sessions) != len(df):
        raise RuleCheckError(f"{len(df)} input rows but {len(res.sessions)} rows in sessions: rows were lost or added")
    same_ids = set(map(str, res.clients["client"])) == set(map(str, df["client"].unique()))
    if not same_ids or len(res.clients) != df["client"].nunique():
        raise RuleCheckError("the clients table does not hold exactly the input clients: a client was lost or added")
    c, e, s = res.clients, res.episodes, res.sessions
    if not ((c["reason"] == "") == c["included"]).all():
        raise RuleCheckError("'included' and 'reason' disagree for some client")
    if c.loc[c["included"], "pattern"].isna().any() or c.loc[~c["included"], "pattern"].notna().any():
        raise RuleCheckError("'pattern' must be set exactly for the included clients")
    if not set(c["pattern"].dropna()) <= set(PATTERNS):
        raise RuleCheckError(f"unknown pattern values {set(c['pattern'].dropna()) - set(PATTERNS)}")
    if not set(s["label"]) <= set(LABELS):
        raise RuleCheckError(f"unknown session labels {set(s['label']) - set(LABELS)}")
    if len(e):
        repaired = e["status"] == "repaired"
        if not (e["start"] <= e["trough"]).all():
            raise RuleCheckError("an episode's trough comes before its start")
        if not (e.loc[repaired, "end"] > e.loc[repaired, "trough"]).all():
            raise RuleCheckError("a repaired episode's end is not after its trough")
        if e.loc[~repaired, "end"].notna().any():
            raise RuleCheckError("an unresolved episode has an end")
        if not (e["depth"] >= 0).all():
            raise RuleCheckError("an episode has a negative depth")
        if not set(e["phase"]) <= set(PHASES):
            raise RuleCheckError("an episode has no valid phase")
        if (e["client"].map(dict(zip(c["client"], c["included"]))) != True).any():  # noqa: E712
            raise RuleCheckError("an episode belongs to a client that is not included")
    n_repair = int((s["label"] == "repair").sum())
    n_repaired_episodes = int((e["status"] == "repaired").sum()) if len(e) else 0
    if n_repair != n_repaired_episodes:
        raise RuleCheckError("the number of 'repair' session labels differs from the number of repaired episodes")
    counted = c["n_ruptures"].fillna(0).astype(int).sum()
    if counted != len(e):
        raise RuleCheckError(f"clients.n_ruptures sums to {counted} but there are {len(e)} episodes")
    for r in e.itertuples():
        rows = s[(s["client"] == r.client) & (s["session"] == r.start)]
        if rows.empty or rows["label"].iloc[0] not in ("rupture", "unresolved"):
            raise RuleCheckError(f"client {r.client!r}: the session at the start of episode {r.episode} is not "
                                 "labelled as a rupture")


def prop_row_order(rule: Rule, df: pd.DataFrame, seed: int) -> None:
    base = _run(df, rule)
    shuffled = df.sample(frac=1.0, random_state=seed % (2**31))
    other = _run(shuffled, rule)
    for name in ("episodes", "sessions", "clients"):
        if not _frames_equal(getattr(base, name), getattr(other, name)):
            raise RuleCheckError(f"the {name} table changed when the input rows were shuffled")
    ids = sorted(df["client"].unique(), key=str)
    mapping = {old: f"relabelled-{len(ids) - i:05d}" for i, old in enumerate(ids)}
    back = {v: k for k, v in mapping.items()}
    relabelled = _run(df.assign(client=df["client"].map(mapping)), rule)
    got = sorted(((back[cl], *rest) for cl, *rest in _episodes(relabelled)), key=lambda t: (str(t[0]), t[1]))
    want = sorted(_episodes(base), key=lambda t: (str(t[0]), t[1]))
    if got != want:
        raise RuleCheckError("the episodes changed when the client ids were relabelled (in reverse order)")


def prop_batch(rule: Rule, df: pd.DataFrame) -> None:
    whole = _run(df, rule)
    fixed = _fix_sample(rule, whole)
    whole = _run(df, fixed)
    one = []
    for _, g in df.groupby("client", sort=False):
        one += _episodes(_run(g, fixed))
    key = lambda t: (str(t[0]), t[1])
    if sorted(one, key=key) != sorted(_episodes(whole), key=key):
        raise RuleCheckError(
            "labelling the clients one at a time gives different episodes than labelling them together"
            + (" (sample-dependent parameters were fixed to the batch's values)" if rule.sample_dependent else "")
        )
    old = _panel.BLOCK_CELLS
    _panel.BLOCK_CELLS = 3
    try:
        tiny = _run(df, fixed)
    finally:
        _panel.BLOCK_CELLS = old
    if _episodes(tiny) != _episodes(whole):
        raise RuleCheckError("splitting the clients into tiny blocks changed the episodes")


def prop_shift(rule: Rule, df: pd.DataFrame, shift: int) -> None:
    a = _episodes(_run(df, rule))
    b = _episodes(_run(df.assign(session=df["session"] + shift), rule))
    moved = [(c, s + shift, t + shift, None if e is None else e + shift, st) for c, s, t, e, st in a]
    if moved != b:
        raise RuleCheckError(f"adding {shift} to every session number did not move every episode by {shift}")


def prop_no_drop(rule: Rule, values: list[float], rises: list[int], spec: ats.ScaleSpec) -> None:
    flat = _run(pd.DataFrame({"client": 1, "session": range(1, len(values) + 1), "score": [values[0]] * len(values)}),
                rule)
    if len(flat.episodes):
        raise RuleCheckError(f"a constant course ({len(values)} sessions at {values[0]}) got an episode")
    level = values[0]
    rising = spec.snap(level + np.cumsum(np.array(rises[: len(values)]) * spec.step))
    res = _run(pd.DataFrame({"client": 1, "session": range(1, len(rising) + 1), "score": rising}), rule)
    if len(res.episodes):
        raise RuleCheckError(f"a never-decreasing course {rising} got an episode")


def prop_planted(rule: Rule, case: ats.Planted) -> None:
    res = _run(case.frame(), rule)
    found = [(s, e, st) for _, s, _, e, st in _episodes(res)]
    hit = [f for f in found if abs(f[0] - case.start) <= 1]
    if not hit:
        raise RuleCheckError(
            f"an unmistakable {case.status} drop of {case.depth:.3g} points (at least 10 noise SDs) at "
            f"session {case.start} was not found (episodes found: {found or 'none'})"
        )
    if hit[0][2] != case.status:
        raise RuleCheckError(
            f"the planted drop at session {case.start} was found but labelled {hit[0][2]!r}, not {case.status!r}"
        )


def prop_deterministic(rule: Rule, df: pd.DataFrame) -> None:
    a, b = _run(df, rule), _run(df, rule)
    for name in ("episodes", "sessions", "clients"):
        if not _frames_equal(getattr(a, name), getattr(b, name)):
            raise RuleCheckError(f"two runs on the same data gave different {name} tables: the rule is not "
                                 "deterministic")


def prop_invariance(rule: Rule, df: pd.DataFrame, offset: float, factor: float) -> None:
    base = _run(df, rule)
    fixed = _fix_sample(rule, base)
    base = _episodes(_run(df, fixed))
    if "translation" in rule.invariances:
        got = _episodes(_run(df.assign(score=df["score"] + offset), fixed))
        if got != base:
            raise RuleCheckError(f"adding {offset} to every score changed the episodes, though the rule declares "
                                 "'translation' invariance")
    if "scaling" in rule.invariances:
        got = _episodes(_run(df.assign(score=df["score"] * factor), fixed.rescaled(factor)))
        if got != base:
            raise RuleCheckError(f"multiplying every score by {factor} changed the episodes, though the rule "
                                 "declares 'scaling' invariance")


def prop_monotone(rule: Rule, df: pd.DataFrame, factor: float) -> None:
    spec = rule.strictness
    if spec is None:
        return
    name, direction = (spec, "up") if isinstance(spec, str) else spec
    value = getattr(rule, name)
    if value is None:
        return
    stricter_value = value * factor if direction == "up" else value / factor
    base = _run(df, rule)
    fixed = _fix_sample(rule, base)
    loose = set(_run(df, fixed).clients.query("n_ruptures > 0")["client"])
    strict = set(_run(df, dataclasses.replace(fixed,
                                              **{name: stricter_value})).clients.query("n_ruptures > 0")["client"])
    extra = strict - loose
    if extra:
        raise RuleCheckError(
            f"with the stricter {name}={stricter_value:.4g} (instead of {value:.4g}) clients "
            f"{sorted(map(str, extra))[:3]} are flagged that were not flagged before"
        )


# --------------------------------------------------------------------------
# running them


def _strategies(rule: Rule, scale: ats.ScaleSpec | None):
    sc = st.just(scale) if scale is not None else ats.scales()
    panel = sc.flatmap(lambda spec: ats.panels(scale=spec))
    return {
        "schema": (prop_schema, dict(df=panel)),
        "row_order": (prop_row_order, dict(df=panel, seed=st.integers(0, 2**31 - 1))),
        "batch": (prop_batch, dict(df=panel)),
        "shift": (prop_shift, dict(df=panel, shift=st.integers(-5, 200))),
        "no_drop": (
            prop_no_drop,
            dict(
                values=sc.flatmap(lambda spec: ats.trajectories(3, 40, spec)),
                rises=st.lists(st.integers(0, 2), min_size=40, max_size=40),
                spec=sc,
            ),
        ),
        "planted": (prop_planted,
                    dict(case=sc.flatmap(lambda spec: ats.planted(kinds=rule.detects or ("v",), scale=spec)))),
        "deterministic": (prop_deterministic, dict(df=panel)),
        "invariance": (
            prop_invariance,
            dict(df=panel, offset=st.sampled_from([-7.0, 0.5, 13.0, 100.0, 1e5, 1e6]),
                 factor=st.sampled_from([0.5, 2.0, 3.0, 10.0])),
        ),
        "monotone": (prop_monotone, dict(df=panel, factor=st.sampled_from([1.25, 1.5, 2.0, 4.0]))),
    }


#: Property names in the order :func:`check_rule` runs them.
PROPERTIES = ("schema", "row_order", "batch", "shift", "no_drop", "planted", "deterministic", "invariance", "monotone")


def _applies(rule: Rule, name: str) -> bool:
    if name == "planted":
        return bool(rule.detects)
    if name == "invariance":
        return bool(rule.invariances)
    if name == "monotone":
        return rule.strictness is not None
    return True


def run_property(
    rule: Any,
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    profile: str | settings = "ci",
    scale: ats.ScaleSpec | None = None,
) -> None:
    """Run one property (see :data:`PROPERTIES`); raise :class:`RuleCheckError` on failure."""
    rule_obj = resolve_rule(rule, params)
    label = rule if isinstance(rule, str) else getattr(rule, "__name__", type(rule_obj).__name__)
    if name not in PROPERTIES:
        raise ValueError(f"unknown property {name!r}; properties: {', '.join(PROPERTIES)}")
    if not _applies(rule_obj, name):
        return
    fn, strategies = _strategies(rule_obj, scale)[name]
    conf = PROFILES[profile] if isinstance(profile, str) else profile

    @conf
    @given(**strategies)
    def test(**kwargs):
        fn(rule_obj, **kwargs)

    try:
        test()
    except RuleCheckError as err:
        notes = "\n".join(getattr(err, "__notes__", []))
        raise RuleCheckError(
            f"rule {label!r} fails property {name!r}: {err}\n{notes}".rstrip()
        ) from None
    except (Flaky, HypothesisException) as err:
        raise RuleCheckError(
            f"rule {label!r} fails property {name!r}: the same data gave different outcomes on "
            f"different runs, so the rule is not deterministic ({type(err).__name__}: {err})"
        ) from None
    except Exception as err:  # the rule itself crashed
        notes = "\n".join(getattr(err, "__notes__", []))
        raise RuleCheckError(
            f"rule {label!r} fails property {name!r}: it raised {type(err).__name__}: {err}\n{notes}".rstrip()
        ) from None


def check_rule(
    rule: Any,
    *,
    profile: str | settings = "ci",
    properties: tuple[str, ...] = PROPERTIES,
    scale: ats.ScaleSpec | None = None,
    **params: Any,
) -> None:
    """Property-test a detection rule.

    Parameters
    ----------
    rule : str, Rule class or instance, or function
        A registered rule name, a :class:`~alliance_ts.Rule`, or a rule
        function as accepted by :func:`~alliance_ts.register_rule`.
    profile : {"ci", "thorough", "quick"} or hypothesis.settings
        ``"ci"`` (20 examples per property, derandomised: the same every run),
        ``"thorough"`` (400 random examples) or ``"quick"`` (as ``"ci"`` but
        without shrinking a failure to its minimal example).
    properties : tuple of str
        Which properties to check (default: all of :data:`PROPERTIES`).
    scale : ScaleSpec, optional
        Draw data on this scale only (e.g. for a rule with an absolute
        cut-off in score units).
    **params
        The rule's parameters.

    Raises
    ------
    RuleCheckError
        (an ``AssertionError``) naming the first property that fails, why, and
        Hypothesis' minimal failing example.

    Examples
    --------
    >>> from alliance_ts.testing import check_rule
    >>> check_rule("gumz2012", properties=("no_drop", "planted"))
    """
    for name in properties:
        run_property(rule, name, params, profile=profile, scale=scale)


class RuleChecks:
    """Drop-in pytest tests: one test per property.

    Subclass it in your test suite and set ``rule`` (and ``params``,
    ``profile``, ``scale``)::

        from alliance_ts.testing import RuleChecks

        class TestMyRule(RuleChecks):
            rule = "my_rule"
            params = {"size": 8.0}

    pytest then runs ``test_schema``, ``test_row_order``, ... for the rule.
    """

    rule: Any = None
    params: Mapping[str, Any] = {}
    profile: str = "ci"
    scale: ats.ScaleSpec | None = None

    def _check(self, name: str) -> None:
        run_property(self.rule, name, dict(self.params), profile=self.profile, scale=self.scale)

    def test_schema(self):
        self._check("schema")

    def test_row_order(self):
        self._check("row_order")

    def test_batch(self):
        self._check("batch")

    def test_shift(self):
        self._check("shift")

    def test_no_drop(self):
        self._check("no_drop")

    def test_planted(self):
        self._check("planted")

    def test_deterministic(self):
        self._check("deterministic")

    def test_invariance(self):
        self._check("invariance")

    def test_monotone(self):
        self._check("monotone")
