"""Rule parameters, declared once.

Every parameter of a rule is a dataclass field made by one of the helpers
below, which records its kind (a number in a range, a whole number, one of a
few choices, a flag, a column name, ...), its default and a one-line meaning.
From that one declaration come

- the check of a value (:meth:`Param.check`, run by ``Rule.check``);
- the ``parameters`` column of :func:`alliance_ts.list_rules`;
- the parsing of ``--param NAME=VALUE`` on the command line
  (:meth:`Param.parse`);
- the parameter tables of the documentation (:func:`parameter_table`).

Example
-------
>>> from dataclasses import dataclass
>>> from alliance_ts.params import number, choice, parameters
>>> @dataclass(frozen=True)
... class Demo:
...     k: float = number(2.0, "drop threshold in SD units", low=0, low_open=True)
...     sd: str = choice("max", "what the SD is", ("max", "client"))
>>> [(p.name, p.describe()) for p in parameters(Demo)]
[('k', 'number > 0'), ('sd', "one of 'max', 'client'")]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import Problem
from .validation import check_choice, check_number

__all__ = [
    "Param",
    "choice",
    "column",
    "columns",
    "flag",
    "integer",
    "number",
    "number_or_choice",
    "number_pair",
    "parameter_table",
    "parameters",
    "parse_text",
    "seed",
]

_NONE_WORDS = ("none", "null")


@dataclass(frozen=True)
class Param:
    """The declaration of one rule parameter.

    Attributes
    ----------
    name : str
        The field name (filled in by :func:`parameters`).
    kind : str
        ``"number"``, ``"integer"``, ``"choice"``, ``"flag"``, ``"column"``,
        ``"columns"`` (one column name or several), ``"pair"`` (a pair of numbers), ``"number_or_choice"`` or ``"any"``.
    meaning : str
        One line: what the parameter does, with its unit.
    default : object
        The default value.
    """

    kind: str
    meaning: str
    default: Any = None
    name: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    allow_none: bool = False
    allow_nan: bool = False
    choices: tuple[Any, ...] = ()

    # -- checking -----------------------------------------------------------

    def check(self, value: Any) -> list[Problem]:
        """Problems with ``value`` for this parameter (empty when valid)."""
        problems: list[Problem] = []
        name = self.name
        if value is None and self.allow_none:
            return problems
        if self.allow_nan and isinstance(value, float) and math.isnan(value):
            return problems  # what an estimate from data without variation reports
        if self.kind in ("number", "integer"):
            check_number(problems, name, value, low=self.low, high=self.high, low_open=self.low_open,
                         high_open=self.high_open, allow_none=self.allow_none, integer=self.kind == "integer")
        elif self.kind == "choice":
            check_choice(problems, name, value, self.choices)
        elif self.kind == "number_or_choice":
            if isinstance(value, str):
                check_choice(problems, name, value, self.choices)
            else:
                found: list[Problem] = []
                check_number(found, name, value, low=self.low, high=self.high, low_open=self.low_open,
                             high_open=self.high_open)
                if found:
                    problems.append(Problem(f"parameter {name!r}", f"must be {self.describe()}, got {value!r}"))
        elif self.kind == "flag":
            if not isinstance(value, bool) and type(value).__name__ != "bool_":
                problems.append(Problem(f"parameter {name!r}", f"must be True or False, got {value!r}"))
        elif self.kind == "column":
            if not isinstance(value, str) or not value:
                none = " or None" if self.allow_none else ""
                problems.append(Problem(f"parameter {name!r}", f"must be a column name{none}, got {value!r}"))
        elif self.kind == "columns":
            names = [value] if isinstance(value, str) else value
            if (not isinstance(names, (list, tuple)) or not names
                    or not all(isinstance(c, str) and c for c in names)):
                problems.append(Problem(f"parameter {name!r}", f"must be {self.describe()}, got {value!r}"))
            elif len(set(names)) < len(names):
                problems.append(Problem(f"parameter {name!r}", f"names a column twice: {value!r}"))
        elif self.kind == "pair":
            ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            )
            if ok:
                for bound, v in zip(("first", "second"), value):
                    if not (math.isnan(float(v)) and self.allow_nan):
                        found = []
                        low, high = self.pair_bounds(bound)
                        check_number(found, name, float(v), low=low[0], low_open=low[1], high=high[0],
                                     high_open=high[1])
                        ok = ok and not found
            if not ok:
                problems.append(Problem(f"parameter {name!r}", f"must be {self.describe()}, got {value!r}"))
        return problems

    def pair_bounds(self, which: str) -> tuple[tuple[float | None, bool], tuple[float | None, bool]]:
        """Bounds of the first or second number of a pair: ``((low, open), (high, open))``."""
        parts = dict(self.choices) if self.choices else {}
        return parts.get(which, ("number", ((None, False), (None, False))))[1]

    def pair_name(self, which: str) -> str:
        """What the first or second number of a pair is."""
        parts = dict(self.choices) if self.choices else {}
        return parts.get(which, ("number", None))[0]

    # -- describing ------------------------------------------------------

    def describe(self) -> str:
        """The allowed values in words (for messages, help and docs)."""
        none = " or None" if self.allow_none else ""
        if self.kind in ("number", "integer"):
            word = "whole number" if self.kind == "integer" else "number"
            return f"{word}{_range_words(self.low, self.high, self.low_open, self.high_open)}{none}"
        if self.kind == "choice":
            return "one of " + ", ".join(map(repr, self.choices)) + none
        if self.kind == "number_or_choice":
            return (f"number{_range_words(self.low, self.high, self.low_open, self.high_open)} or one of "
                    + ", ".join(map(repr, self.choices)))
        if self.kind == "flag":
            return "True or False"
        if self.kind == "column":
            return "a column name" + none
        if self.kind == "columns":
            return "a column name or a list of column names" + none
        if self.kind == "pair":
            (lo1, hi1), (lo2, hi2) = self.pair_bounds("first"), self.pair_bounds("second")
            return (("None or " if self.allow_none else "")
                    + f"a pair ({self.pair_name('first')}{_range_words(lo1[0], hi1[0], lo1[1], hi1[1])}, "
                    f"{self.pair_name('second')}{_range_words(lo2[0], hi2[0], lo2[1], hi2[1])})")
        return "any value"

    # -- parsing the command line -----------------------------------------

    def parse(self, text: str) -> Any:
        """The value written as ``text`` on the command line (``--param NAME=TEXT``).

        ``none``/``null`` give None where None is allowed; numbers, flags
        (``true``/``false``, ``yes``/``no``, ``1``/``0``) and pairs
        (``1.5,0.3``) are read by the parameter's kind; a choice is kept as
        text even when it looks like a number. Text that is not a valid
        value is returned unchanged, so that :meth:`check` reports it.
        """
        raw = text.strip()
        low = raw.lower()
        if low in _NONE_WORDS and (self.allow_none or self.kind == "any"):
            return None
        if self.kind in ("number", "integer"):
            return _number(raw, integer=self.kind == "integer")
        if self.kind == "number_or_choice":
            return raw if raw in self.choices else _number(raw, integer=False)
        if self.kind == "flag":
            if low in ("true", "yes", "1"):
                return True
            if low in ("false", "no", "0"):
                return False
            return raw
        if self.kind == "pair":
            parts = [p.strip() for p in raw.split(",")]
            values = [_number(p, integer=False) for p in parts]
            return tuple(values) if all(isinstance(v, float) for v in values) else raw
        if self.kind == "columns":
            names = [part.strip() for part in raw.split(",")]
            return names[0] if len(names) == 1 else tuple(names)
        if self.kind in ("choice", "column"):
            return raw
        return parse_text(raw)


def parse_text(text: str) -> Any:
    """A value of unknown kind written on the command line.

    ``None``/``null`` -> None, ``true``/``false`` -> bool, numbers -> int or
    float, comma-separated numbers -> tuple, anything else -> str.

    Examples
    --------
    >>> [parse_text(v) for v in ("2", "2.5", "client", "none", "True", "1.5,0.3")]
    [2, 2.5, 'client', None, True, (1.5, 0.3)]
    """
    low = text.strip().lower()
    if low in _NONE_WORDS:
        return None
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if "," in text:
        parts = [p.strip() for p in text.split(",")]
        try:
            return tuple(float(p) for p in parts)
        except ValueError:
            return text
    return text


def _number(text: str, *, integer: bool) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    if integer and value.is_integer():
        return int(value)
    return value


def _range_words(low, high, low_open, high_open) -> str:
    parts = []
    if low is not None:
        parts.append(f"> {low:g}" if low_open else f">= {low:g}")
    if high is not None:
        parts.append(f"< {high:g}" if high_open else f"<= {high:g}")
    if len(parts) == 2 and low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f" in {left}{low:g}, {high:g}{right}"
    return (" " + " and ".join(parts)) if parts else ""


# --------------------------------------------------------------------------
# declaring


def _field(default: Any, param: Param) -> Any:
    return field(default=default, metadata={"param": dataclasses.replace(param, default=default)})


def number(default: float | None, meaning: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, allow_none: bool = False,
           allow_nan: bool = False) -> Any:
    """A real number, optionally bounded (``low_open``: ``> low`` instead of ``>=``)."""
    return _field(default, Param("number", meaning, low=low, high=high, low_open=low_open, high_open=high_open,
                                 allow_none=allow_none, allow_nan=allow_nan))


def integer(default: int | None, meaning: str, *, low: int | None = None, high: int | None = None,
            allow_none: bool = False) -> Any:
    """A whole number, optionally bounded."""
    return _field(default, Param("integer", meaning, low=low, high=high, allow_none=allow_none))


def seed(default: int, meaning: str) -> Any:
    """A random seed: a whole number >= 0."""
    return integer(default, meaning, low=0)


def choice(default: Any, meaning: str, choices: Sequence[Any], *, allow_none: bool = False) -> Any:
    """One of a few values."""
    return _field(default, Param("choice", meaning, choices=tuple(choices), allow_none=allow_none))


def number_or_choice(default: Any, meaning: str, choices: Sequence[str], *, low: float | None = None,
                     low_open: bool = False) -> Any:
    """A number, or one of a few names (a penalty: a value or ``"bic"``)."""
    return _field(default, Param("number_or_choice", meaning, choices=tuple(choices), low=low, low_open=low_open))


def flag(default: bool, meaning: str) -> Any:
    """True or False."""
    return _field(default, Param("flag", meaning))


def column(default: str | None, meaning: str, *, allow_none: bool = True) -> Any:
    """A column of the input table."""
    return _field(default, Param("column", meaning, allow_none=allow_none))


def columns(default: str | tuple[str, ...] | None, meaning: str, *, allow_none: bool = True) -> Any:
    """One column of the input table or several (``"a"`` or ``("a", "b")``; ``a,b`` on the command line)."""
    return _field(default, Param("columns", meaning, allow_none=allow_none))


_Bounds = tuple[tuple[float | None, bool], tuple[float | None, bool]]


def number_pair(default: tuple[float, float] | None, meaning: str, *,
                first: tuple[str, _Bounds] = ("number", ((None, False), (None, False))),
                second: tuple[str, _Bounds] = ("number", ((None, False), (None, False))),
                allow_none: bool = True, allow_nan: bool = True) -> Any:
    """A pair of numbers, each ``(what it is, ((low, open), (high, open)))``."""
    return _field(default, Param("pair", meaning, allow_none=allow_none, allow_nan=allow_nan,
                                 choices=(("first", first), ("second", second))))


def parameters(cls: type) -> list[Param]:
    """The declared parameters of a rule class, in field order.

    A field without a declaration (a rule written as a function) is a
    parameter of kind ``"any"`` with no check.
    """
    out = []
    for f in dataclasses.fields(cls):
        p = f.metadata.get("param")
        if p is None:
            default = f.default if f.default is not dataclasses.MISSING else None
            p = Param("any", "", default=default)
        out.append(dataclasses.replace(p, name=f.name))
    return out


def parameter_table(name: str) -> str:
    """A Markdown table of a registered rule's parameters: name, default, allowed values, meaning.

    Presets show their own default values (the family's otherwise).
    """
    from .rules import get_rule

    spec = get_rule(name)
    defaults = spec.parameters()
    lines = ["| parameter | default | allowed | meaning |", "|---|---|---|---|"]
    for p in parameters(spec.cls):
        value = defaults.get(p.name, p.default)
        lines.append(f"| `{p.name}` | `{value!r}` | {p.describe()} | {p.meaning} |")
    return "\n".join(lines)
