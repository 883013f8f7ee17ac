"""Rules written as a plain function of one client's scores.

Methodologists can write a rule as ``f(scores, *, param=default, ...)`` that
returns the episodes of one client; :func:`~alliance_ts.register_rule`
turns it into a registered rule, so ``detect(df, rule="name")`` gets the
validation, the result tables, the phases and the property checks for free.
It runs one client at a time in Python: fine for research data sets, slower
than the vectorised built-in rules on millions of clients.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import Problem, RuleError
from ..panel import Block
from ._base import BlockResult, Rule

__all__ = ["rule_class_from_function"]


def rule_class_from_function(func: Callable[..., Any], name: str) -> type[Rule]:
    """A frozen-dataclass :class:`Rule` whose parameters are ``func``'s keyword-only ones.

    ``func(scores, *, p1=..., p2=...)`` receives one client's observed scores
    (a 1-D float array in session order, missed sessions left out) and
    returns a list of episodes, each a tuple of positions in ``scores``:

    - ``(start, end)``: rupture first seen at ``scores[start]``, repair first
      seen at ``scores[end]``; ``end=None`` for an unresolved episode;
    - ``(start, end, pre)``: the same with an explicit pre-rupture level
      (default: the score before ``start``).

    The trough is the first lowest score from ``start`` up to the session
    before ``end`` (or to the last session).
    """
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(f"rule function {func.__name__!r} must take the scores as its first argument")
    fields = []
    for p in params[1:]:
        if p.kind != inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(
                f"rule function {func.__name__!r}: parameter {p.name!r} must be keyword-only "
                "(put a '*' after the scores argument)"
            )
        annotation = p.annotation if p.annotation is not inspect.Parameter.empty else Any
        if p.default is inspect.Parameter.empty:
            fields.append((p.name, annotation, dataclasses.field(default=None)))
        else:
            fields.append((p.name, annotation, dataclasses.field(default=p.default)))
    required = [p.name for p in params[1:] if p.default is inspect.Parameter.empty]

    def check(self) -> list[Problem]:
        return [
            Problem(f"parameter {r!r}", f"rule {name!r} needs a value for {r!r}")
            for r in required
            if getattr(self, r) is None
        ]

    def label(self, block: Block) -> BlockResult:
        kwargs = self.params()
        rows, starts, troughs, ends, pres = [], [], [], [], []
        for i in range(block.x.shape[0]):
            n = int(block.n[i])
            scores = np.array(block.x[i, :n], dtype=float)
            scores.setflags(write=False)
            found = func(scores, **kwargs)
            for k, ep in enumerate(found or []):
                start, end, pre = _unpack(ep, name, k)
                stop = n if end is None else end
                if not (0 <= start < n and (end is None or start < end < n)):
                    # left for the result validation to report with the client id
                    rows.append(i)
                    starts.append(start)
                    troughs.append(start)
                    ends.append(-1 if end is None else end)
                    pres.append(math.nan if pre is None else pre)
                    continue
                trough = start + int(np.argmin(scores[start:stop]))
                if pre is None:
                    pre = float(scores[start - 1]) if start >= 1 else math.nan
                rows.append(i)
                starts.append(start)
                troughs.append(trough)
                ends.append(-1 if end is None else end)
                pres.append(float(pre))
        scanned = (
            np.asarray(rows, dtype=np.int64),
            np.asarray(starts, dtype=np.int64),
            np.asarray(troughs, dtype=np.int64),
            np.asarray(ends, dtype=np.int64),
            np.asarray(pres, dtype=float),
        )
        return BlockResult.from_scan(block, scanned)

    doc = inspect.getdoc(func) or f"Rule {name!r} (a function rule)."
    cls = dataclasses.make_dataclass(
        f"FunctionRule_{func.__name__}",
        fields,
        bases=(Rule,),
        frozen=True,
        namespace={"check": check, "label": label, "__doc__": doc, "function": staticmethod(func)},
    )
    cls.__module__ = getattr(func, "__module__", __name__)
    return cls


def _unpack(ep: Any, name: str, k: int) -> tuple[int, int | None, float | None]:
    try:
        items = tuple(ep)
    except TypeError:
        raise RuleError(f"rule {name!r} returned episode {k + 1} as {ep!r}; expected (start, end[, pre])") from None
    if len(items) not in (2, 3):
        raise RuleError(f"rule {name!r} returned episode {k + 1} as {ep!r}; expected (start, end[, pre])")
    start, end = items[0], items[1]
    pre = items[2] if len(items) == 3 else None
    try:
        start = int(start)
        end = None if end is None else int(end)
        pre = None if pre is None else float(pre)
    except (TypeError, ValueError):
        raise RuleError(f"rule {name!r} returned episode {k + 1} as {ep!r}; positions must be whole numbers") from None
    return start, end, pre
