"""``alliance-ts monitor``: feed new sessions to a saved monitoring state and append the alerts.

One run reads a file of new sessions, updates the state file (created on the
first run with ``--rule``) and appends one row per new session to the alerts
CSV file (its header written once). The whole batch is checked first: a
session sent twice or out of order, a non-numeric or out-of-scale score, a
missing id, a state of another rule or version stop the run with status 2 and
one line per problem, and nothing is changed. Both files are written to
temporary files first and then renamed into place, the alerts file first and
the state last, with interrupts held back between the two renames: an
interrupted run leaves both as they were.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ._version import __version__
from .errors import InvalidInputError, Problem

__all__ = ["add_parser", "run"]

EXAMPLES = """\
examples:
  alliance-ts monitor week1.csv --state state.json --out alerts.csv --rule srs36
  alliance-ts monitor week2.csv --state state.json --out alerts.csv
  alliance-ts monitor new.csv --state state.parquet --out alerts.csv --rule drop --prior last_year.csv \\
      --client pid --session week --score srs --scale srs
  alliance-ts monitor new.csv --state state.json --out alerts.csv --rule drop --param s0=2.1 --param d0=4

The state file (.json, or .parquet with pyarrow) keeps a few numbers per client; it is created
when it does not exist (give --rule, and for drop --prior or --param s0=.. --param d0=..).
The alerts file gets one row per new session: the id, session and score columns (your names),
alert (an alert is open at this session), new (opened here), repaired (the open alert closed
here), evidence, p, alert_start, threshold and baseline. --caseload writes the clients with
an alert open now, strongest evidence first.
"""


def add_parser(sub: Any) -> None:
    """The ``monitor`` subcommand's options."""
    m = sub.add_parser(
        "monitor", help="update a live monitoring state with new sessions",
        description="Feed new sessions to a saved monitoring state and append one alert row per session.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("input", help="new sessions: CSV, Parquet, Excel, SPSS or Stata file")
    m.add_argument("--state", required=True, help="the state file (.json or .parquet); created when missing")
    m.add_argument("--out", required=True, help="the alerts CSV file; rows are appended (header written once)")
    m.add_argument("--rule", default=None,
                   help="monitoring rule when creating the state: drop, cutoff or srs36; "
                        "with an existing state, a check that it is this rule's")
    m.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a rule parameter when creating the state, e.g. --param k=2 (repeatable)")
    m.add_argument("--prior", default=None, metavar="FILE",
                   help="drop: fit the prior noise SD on this reference file of earlier courses (same columns) "
                        "when creating the state")
    m.add_argument("--client", default="client", help="client id column (default: client)")
    m.add_argument("--session", default="session", help="session number column (default: session)")
    m.add_argument("--score", default="score", help="score column (default: score)")
    m.add_argument("--scale", default=None,
                   help="instrument id or LOW,HIGH when creating the state (srs36: srs); scores outside are an error")
    m.add_argument("--caseload", default=None, metavar="FILE",
                   help="also write the clients with an open alert now (CSV, replaced)")
    m.add_argument("--input-format", default=None, choices=["csv", "parquet", "excel", "spss", "stata"],
                   help="input format (default: from the extension)")
    m.add_argument("--sep", default=None, help="CSV delimiter (default: detected)")
    m.add_argument("--encoding", default="utf-8-sig", help="CSV text encoding (default: UTF-8)")
    m.add_argument("--decimal", default=".", help="CSV decimal mark (default: '.')")
    m.add_argument("--sheet", default=None, help="Excel sheet name or number (default: the first)")
    m.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def _params(items: list[str], rule: str | None) -> tuple[dict[str, Any], list[Problem]]:
    from .monitor_rules import _ONLINE
    from .params import parameters, parse_text

    entry = _ONLINE.get(rule or "")
    declared = {p.name: p for p in parameters(entry.cls)} if entry is not None else {}
    params: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            problems.append(Problem("--param", f"expected NAME=VALUE, got {item!r}"))
        elif name in params:
            problems.append(Problem("--param", f"{name!r} is given twice"))
        else:
            param = declared.get(name)
            params[name] = param.parse(value) if param is not None else parse_text(value.strip())
    return params, problems


def _scale(text: str | None) -> Any:
    from .params import parse_text

    if text is None:
        return None
    if "," in text:
        return tuple(parse_text(p) for p in text.split(",", 1))
    return text


def _read(path: str, args: Any) -> pd.DataFrame:
    from .io import read_table
    from .params import parse_text

    sheet = parse_text(args.sheet) if args.sheet is not None else None
    frame, _ = read_table(path, format=args.input_format, sheet=sheet, sep=args.sep, text=(args.client,),
                          encoding=args.encoding, decimal=args.decimal)
    return frame


def _temp_name(target: Path) -> Path:
    """A temporary name beside ``target`` with the same extension (renamed onto it when complete)."""
    import secrets

    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent / f".{target.name}.{secrets.token_hex(4)}.partial{target.suffix}"


def run(args: Any, argv: list[str] | None) -> int:
    """Run ``alliance-ts monitor``; returns the exit status (raises InvalidInputError on mistakes)."""
    from .io import check_readable, escape_formulas
    from .monitor import Monitor, _date_problem
    from .output import signals_blocked

    state_path, out_path = Path(args.state), Path(args.out)
    problems: list[Problem] = []
    if out_path.suffix.lower() != ".csv":
        problems.append(Problem("--out", f"{str(out_path)!r}: the alerts file is a CSV file (name ending in .csv)"))
    if state_path.suffix.lower() not in (".json", ".parquet", ".pq"):
        problems.append(Problem("--state", f"{str(state_path)!r}: a state file ends in .json or .parquet"))
    for option, target in (("--state", state_path), ("--out", out_path)):
        if target.is_dir():
            problems.append(Problem(option, f"{str(target)!r} is a folder; name a file"))
        elif os.path.exists(args.input) and target.exists() and os.path.samefile(args.input, target):
            problems.append(Problem(option, f"{str(target)!r} is the input file"))
    if args.caseload is not None and Path(args.caseload).suffix.lower() != ".csv":
        problems.append(Problem("--caseload", f"{args.caseload!r}: the caseload file is a CSV file"))
    existing = state_path.is_file()
    if existing and (args.param or args.prior is not None or args.scale is not None):
        problems.append(Problem("--param/--prior/--scale", f"{str(state_path)!r} exists and keeps its rule's "
                                "parameters, prior and scale; these options only apply when a state is created "
                                "(use a new state file to change them)"))
    if not existing and args.rule is None:
        problems.append(Problem("--rule", f"{str(state_path)!r} does not exist: name the rule to create it with "
                                "(--rule drop, cutoff or srs36)"))
    params, found = _params(args.param, args.rule)
    problems += found
    if problems:
        raise InvalidInputError(problems, "alliance_ts")
    check_readable(args.input)

    if existing:
        mon = Monitor.load(state_path, rule=args.rule)
    else:
        mon = Monitor(args.rule, scale=_scale(args.scale), **params)
    frame = _read(args.input, args)
    dated = _date_problem(frame, args.session)
    if dated is not None:  # before the prior is fitted, and with no hint at options this command does not have
        raise InvalidInputError([dated], "alliance_ts")
    if not existing and args.prior is not None:
        check_readable(args.prior)
        reference = _read(args.prior, args)
        dated = _date_problem(reference, args.session)
        if dated is not None:
            raise InvalidInputError([Problem(f"--prior: {dated.where}", dated.message, dated.examples)],
                                    "alliance_ts")
        mon.fit(reference, client=args.client, session=args.session, score=args.score,
                source=f"reference file {os.path.basename(args.prior)}")
    alerts = mon.update(frame, client=args.client, session=args.session, score=args.score)

    table = alerts.sessions.drop(columns=["repaired_at"]).rename(
        columns={"client": args.client, "session": args.session, "score": args.score})
    header = list(table.columns)
    old = b""
    newline = "\n"
    if out_path.is_file() and out_path.stat().st_size > 0:
        old = out_path.read_bytes()
        line = old.split(b"\n", 1)[0]
        # a file re-saved by a spreadsheet ("CSV UTF-8") starts with a byte-order mark and ends lines with CRLF
        first = line.decode("utf-8-sig", errors="replace").rstrip("\r")
        if line.endswith(b"\r"):
            newline = "\r\n"
        if first.split(",") != header:
            raise InvalidInputError([Problem("--out", f"{str(out_path)!r} has other columns than these alerts "
                                             f"({first[:120]!r}); name a new alerts file")], "alliance_ts")
        if not old.endswith(b"\n"):
            old += newline.encode()
    buf = io.StringIO()
    escape_formulas(table).to_csv(buf, index=False, header=not old, lineterminator=newline)
    caseload = mon.caseload().rename(columns={"client": args.client, "session": args.session, "score": args.score})
    temps = {target: _temp_name(target) for target in
             [out_path, state_path] + ([Path(args.caseload)] if args.caseload is not None else [])}
    try:
        temps[out_path].write_bytes(old + buf.getvalue().encode("utf-8"))
        mon.save(temps[state_path])
        if args.caseload is not None:
            escape_formulas(caseload).to_csv(temps[Path(args.caseload)], index=False)
        # every file is complete: rename them into place (alerts first, the state last), interrupts held back
        with signals_blocked():
            for target, tmp in temps.items():
                os.replace(tmp, target)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    if not args.quiet:
        s = alerts.sessions
        print(f"{mon.rule}: {len(s)} session(s) of {s['client'].nunique()} client(s); {int(s['new'].sum())} alert(s) "
              f"opened, {int(s['repaired'].sum())} repaired; {len(caseload)} client(s) with an open alert of "
              f"{mon.n_clients} monitored")
        print(f"appended {len(s)} row(s) to {args.out}; state saved to {args.state} (alliance_ts {__version__})")
    sys.stdout.flush()
    return 0
