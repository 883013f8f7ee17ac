"""The ``alliance-ts`` command.

Subcommands: ``detect`` (label a file), ``plot`` (draw a file's labels),
``rules`` (list the rules), ``monitor`` (update a live monitoring state),
``scales`` (list the instruments), ``simulate`` (write a synthetic trial and
its truth) and ``bench`` (the accuracy benchmark). Every subcommand has
``--help`` with examples.

Mistakes in the command or the data exit with status 2 and one line per
problem on standard error, never a traceback. Every command writes its output
folder whole or not at all (:mod:`alliance_ts.output`): an interrupted run
(Ctrl-C, SIGTERM; exit status 130 or 143) leaves the previous outputs as they
were and no temporary file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from ._version import __version__
from .errors import AllianceError, InvalidInputError, Problem
from .params import parse_text

__all__ = ["main", "parse_value"]

PROG = "alliance-ts"

DETECT_EXAMPLES = """\
examples:
  alliance-ts detect trial.csv --out labels
  alliance-ts detect trial.sav --out labels --client pid --session week --score wai --scale wai-sr
  alliance-ts detect trial.parquet --out labels --format parquet --rule gumz2012 --param k=1
  alliance-ts detect trial.csv --out labels --rule sudden_loss --param cutoff=6
  alliance-ts detect big.parquet --out labels --stream --chunk-rows 1000000
  alliance-ts detect wide.xlsx --out labels --wide --client id --sessions wai_1..wai_20
  alliance-ts detect trial.sav --out labels --client pid --session week --score wai --missing=-99,999 --format sav
  alliance-ts detect visits.csv --out labels --session date --session-every 7D --keep therapist,site
  alliance-ts detect trial.parquet --out labels --dask local --workers 2
  alliance-ts detect '/shared/trial/*.parquet' --out labels --dask tcp://scheduler:8786
  alliance-ts detect export.csv --out labels --sep ';' --decimal , --encoding cp1252

outputs (in --out): episodes.<fmt>, sessions.<fmt>, clients.<fmt>, by_client.<fmt> (one row
per client: its pattern and first episode, with the kept covariates), methods.md (a Methods
paragraph), manifest.json (the rule, every parameter, the library version, the input file's
SHA-256 and counts); with --format xlsx one workbook results.xlsx. Columns keep the input's
names for the id, session and score.
--out is created, or replaced as a whole when it holds an earlier output of alliance-ts;
a folder with other files is refused. Client ids are read as written ("007" stays 007).
In CSV outputs, text cells starting with = + - @ (formulas in a spreadsheet) get a
leading apostrophe unless --keep-formulas is given.
"""


def parse_value(text: str) -> Any:
    """Turn a value of unknown kind into a Python value (see :func:`alliance_ts.params.parse_text`).

    Examples
    --------
    >>> [parse_value(v) for v in ("2", "2.5", "client", "none", "True", "1.5,0.3")]
    [2, 2.5, 'client', None, True, (1.5, 0.3)]
    """
    return parse_text(text)


def _scale(text: str | None) -> Any:
    if text is None:
        return None
    if "," in text:
        return tuple(parse_value(p) for p in text.split(",", 1))
    return text


def _params(items: list[str], rule: str | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """``--param NAME=VALUE`` items parsed by each parameter's declared kind (see :mod:`alliance_ts.params`)."""
    from .params import parameters
    from .rules import DEFAULT_RULE
    from .rules._base import _REGISTRY

    spec = _REGISTRY.get(rule if rule is not None else DEFAULT_RULE)
    declared = {p.name: p for p in parameters(spec.cls)} if spec is not None else {}
    params, problems = {}, []
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            problems.append(Problem("--param", f"expected NAME=VALUE, got {item!r}"))
            continue
        if name in params:
            problems.append(Problem("--param", f"{name!r} is given twice"))
            continue
        param = declared.get(name)
        params[name] = param.parse(value) if param is not None else parse_value(value.strip())
    return params, problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find therapeutic-alliance ruptures, repairs and unresolved ruptures in session-by-session scores.",
        epilog="Run 'alliance-ts COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser(
        "detect", help="label a data file",
        description="Label every client of a data file and write the result tables.",
        epilog=DETECT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("input", help="CSV, Parquet, Excel (.xlsx), SPSS (.sav) or Stata (.dta) file")
    d.add_argument("--out", required=True, help="output folder (created if needed)")
    d.add_argument("--rule", default=None, help="rule name (see 'alliance-ts rules'; default: scan)")
    d.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a rule parameter, e.g. --param k=1.5 (repeatable); the value is read as the parameter's "
                        "kind: a number, true/false, none, a pair 1.5,0.3 or a name (see 'alliance-ts rules --full')")
    _input_options(d)
    d.add_argument("--format", default="csv", choices=["csv", "parquet", "sav", "dta", "xlsx"],
                   help="output format (default: csv); sav and dta are SPSS and Stata files with variable and value "
                        "labels, xlsx one workbook results.xlsx with a sheet per table and the manifest")
    d.add_argument("--stream", action="store_true",
                   help="read a CSV or Parquet file in pieces of whole clients (bounded memory; rows of a client "
                        "must be together; the outputs keep the file's client order)")
    d.add_argument("--chunk-rows", type=int, default=500_000,
                   help="rows read at a time with --stream (default: 500000); a piece is then extended or cut "
                        "so that it holds whole clients")
    d.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="label on a Dask cluster: 'local' (this machine) or a scheduler address such as "
                        "tcp://scheduler:8786; INPUT may then be a folder or glob of Parquet/CSV files on shared "
                        "storage")
    d.add_argument("--workers", type=int, default=None, help="worker processes of --dask local (default: one per core)")
    d.add_argument("--keep-formulas", action="store_true",
                   help="write text cells starting with = + - @ verbatim in CSV outputs (default: a leading "
                        "apostrophe stops spreadsheets running them as formulas)")
    d.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")

    pl = sub.add_parser(
        "plot", help="draw a file's labels",
        description="Label a file in memory and draw the dataset overview, a panel of clients "
                    "and, for each --clients id, that client's trajectory (PNG files).",
        epilog="examples:\n  alliance-ts plot trial.csv --out figures\n"
               "  alliance-ts plot trial.sav --out figures --client pid --session week --score wai "
               "--scale wai-sr --clients 17 42\n"
               "  alliance-ts plot psq.csv --out figures --rule psq --param rater=rater --rater patient\n\n"
               "outputs: overview.png, clients.png and client_<id>.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pl.add_argument("input", help="CSV, Parquet, Excel (.xlsx), SPSS (.sav) or Stata (.dta) file")
    pl.add_argument("--out", required=True, help="output folder (created if needed)")
    pl.add_argument("--rule", default=None, help="rule name (default: scan)")
    pl.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a rule parameter (repeatable)")
    _input_options(pl)
    pl.add_argument("--clients", nargs="+", default=[], metavar="ID", help="also draw these clients one by one")
    pl.add_argument("--n", type=int, default=9, help="clients in the panel (default: 9)")
    pl.add_argument("--rater", default=None, help="with --rule psq --param rater=COLUMN: the rater to draw")

    r = sub.add_parser("rules", help="list the rules", description="List every rule and preset with its reference.",
                       epilog="example:\n  alliance-ts rules", formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--full", action="store_true", help="also print each rule's parameters and reference")

    sub.add_parser("scales", help="list the instruments", description="List the instruments usable with --scale.",
                   epilog="example:\n  alliance-ts scales", formatter_class=argparse.RawDescriptionHelpFormatter)

    s = sub.add_parser(
        "simulate", help="write a synthetic trial and its true episodes",
        description="Write a simulated trial (scores) and the planted episodes (truth).",
        epilog="examples:\n  alliance-ts simulate --out trial --clients 500 --seed 1\n"
               "  alliance-ts simulate --out trial --scale srs --param p_missing=0.1 --format parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--clients", type=int, default=300, help="number of clients (default: 300)")
    s.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    s.add_argument("--scale", default="wai-sr", help="instrument id or LOW,HIGH (default: wai-sr)")
    s.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a simulate() argument, e.g. --param p_missing=0.1 (repeatable)")
    s.add_argument("--format", default="csv", choices=["csv", "parquet"])

    b = sub.add_parser(
        "bench", help="run the accuracy benchmark",
        description="Run every rule on the simulated scenario grid; write CSV, Markdown and plots.",
        epilog="examples:\n  alliance-ts bench --out bench\n"
               "  alliance-ts bench --out bench --seeds 1 2 --clients 200 --scenarios clear_v no_ruptures",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    b.add_argument("--clients", type=int, default=400)
    b.add_argument("--scenarios", nargs="+", default=None)

    from . import monitor_cli

    monitor_cli.add_parser(sub)
    return parser


def _input_options(p: argparse.ArgumentParser) -> None:
    """The options that say how to read the input (shared by detect and plot)."""
    p.add_argument("--client", default="client", help="client id column (default: client)")
    p.add_argument("--session", default="session",
                   help="session column: numbers, or dates (then numbered by date order within each client; see "
                        "--session-every) (default: session)")
    p.add_argument("--score", default="score", help="score column (default: score)")
    p.add_argument("--scale", default=None,
                   help="instrument id (see 'alliance-ts scales') or LOW,HIGH; scores outside are an error "
                        "(default: no range check; giving the scale is advised)")
    p.add_argument("--min-sessions", type=int, default=3,
                   help="fewest observed scores to analyse a client (default: 3)")
    p.add_argument("--missing", action="append", default=[], metavar="CODES",
                   help="missing-data codes, comma-separated: --missing 999 or --missing=-99,999 (a leading minus "
                        "needs the = form; repeatable); cells holding one are missed sessions. Codes declared in an "
                        "SPSS or Stata file are applied anyway")
    p.add_argument("--no-check-codes", action="store_true",
                   help="do not stop at values that look like undeclared missing codes (999, -99, ...) when no "
                        "--scale is given")
    p.add_argument("--keep", action="append", default=[], metavar="COLUMNS",
                   help="client-level columns to carry into the clients and by_client tables (therapist, site, "
                        "arm; comma-separated or repeated); a wide sheet carries all its other columns by default")
    p.add_argument("--session-every", default=None, metavar="STEP",
                   help="with date sessions: the planned step, e.g. 7D, so that gaps become missed sessions "
                        "(default: sessions numbered by date order, none missed)")
    p.add_argument("--date-format", default=None, metavar="FORMAT",
                   help="how a CSV writes its session dates, e.g. %%d.%%m.%%Y (default: ISO dates 2024-03-01 "
                        "are recognised)")
    p.add_argument("--input-format", default=None, choices=["csv", "parquet", "excel", "spss", "stata"],
                   help="input format (default: from the extension)")
    p.add_argument("--sep", default=None, help="CSV delimiter (default: detected)")
    p.add_argument("--encoding", default="utf-8-sig",
                   help="CSV text encoding (default: UTF-8; Excel on Windows often writes cp1252)")
    p.add_argument("--decimal", default=".", help="CSV decimal mark (default: '.'; ',' for 4,5)")
    p.add_argument("--sheet", default=None, help="Excel sheet name or number (default: the first)")
    p.add_argument("--wide", action="store_true",
                   help="one row per client and one column per session; --sessions names the session columns "
                        "(default: the columns ending in a number), every other column is kept")
    p.add_argument("--sessions", default=None, metavar="COLUMNS",
                   help="with --wide: the session columns, as a range wai_1..wai_20, a comma-separated list, or a "
                        "regular expression such as 'wai_\\d+'")


def _reading(args) -> tuple[dict[str, Any], list[Problem]]:
    """The keyword arguments of detect_file/detect that say how to read the input, and their problems."""
    problems: list[Problem] = []
    missing = None
    for item in args.missing:
        missing = missing or []
        for part in item.split(","):
            value = parse_value(part.strip())
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(Problem("--missing", f"expected numbers separated by commas, got {item!r}"))
                break
            missing.append(value)
    keep = [c.strip() for item in args.keep for c in item.split(",") if c.strip()] or None
    wide = None
    if args.wide:
        wide = {"client": args.client}
        if args.sessions is not None:
            spec = args.sessions
            wide["columns"] = [c.strip() for c in spec.split(",")] if "," in spec and ".." not in spec else spec
    elif args.sessions is not None:
        problems.append(Problem("--sessions", "names the session columns of a wide sheet: add --wide"))
    return {"missing": missing, "check_codes": not args.no_check_codes, "keep": keep,
            "session_every": args.session_every, "date_format": args.date_format, "wide": wide}, problems


def _fail(problems: list[Problem] | list[str], stream=None) -> int:
    stream = stream or sys.stderr
    for p in problems:
        print(f"{PROG}: error: {p}", file=stream)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 mistakes, 1 failures, 130 interrupted)."""
    from .output import Terminated, raise_on_sigterm

    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises KeyboardInterrupt again (see _startup)
    raise_on_sigterm()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        commands = {"detect": _detect, "plot": _plot, "rules": _rules, "scales": _scales, "simulate": _simulate,
                    "bench": _bench, "monitor": _monitor}
        return commands[args.command](args, argv)
    except InvalidInputError as err:
        return _fail(err.problems)
    except AllianceError as err:
        return _fail([str(err)])
    except KeyboardInterrupt as err:
        from .output import COMMITTED

        out = getattr(args, "out", None)
        what = "terminated" if isinstance(err, Terminated) else "interrupted"
        if out and os.path.abspath(out) in COMMITTED:
            print(f"{PROG}: {what} after the outputs were written to {out!r} (they are complete)", file=sys.stderr)
        else:
            where = f" in {out!r}" if out else ""
            print(f"{PROG}: {what}; nothing was written{where} (an earlier output there is unchanged)",
                  file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    except MemoryError:
        return _fail(["out of memory: try --stream (CSV or Parquet input)"])
    except Exception as err:  # an unexpected failure: one line, not a traceback
        print(f"{PROG}: unexpected failure: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


def _detect(args, argv) -> int:
    from .files import detect_file

    params, problems = _params(args.param, args.rule)
    reading, found = _reading(args)
    problems += found
    if problems:
        return _fail(problems)
    sheet = parse_value(args.sheet) if args.sheet is not None else None
    t0 = time.perf_counter()
    manifest = detect_file(
        args.input, args.out, rule=args.rule, params=params, client=args.client, session=args.session,
        score=args.score, scale=_scale(args.scale), min_sessions=args.min_sessions, in_format=args.input_format,
        out_format=args.format, sheet=sheet, sep=args.sep, encoding=args.encoding, decimal=args.decimal, **reading,
        stream=args.stream, chunk_rows=args.chunk_rows, progress=not args.quiet, dask=args.dask,
        workers=args.workers, escape_formulas=not args.keep_formulas,
        command=[PROG] + list(argv if argv is not None else sys.argv[1:]),
    )
    if not args.quiet:
        c = manifest["counts"]
        who = f"{c['clients']} clients ({c['included']} analysed)"
        if "raters" in c:
            who = (f"{c['clients']} clients x {len(c['raters'])} raters = {c['client_rater_rows']} client-rater "
                   f"courses ({c['included']} analysed)")
        print(
            f"{manifest['rule']}: {who}, {c['episodes']} episodes "
            f"({c['repaired']} repaired, {c['unresolved']} unresolved); patterns "
            + ", ".join(f"{k} {v}" for k, v in c["patterns"].items())
        )
        seconds = time.perf_counter() - t0
        print(f"wrote {', '.join(manifest['outputs'])} and manifest.json to {args.out} in {seconds:.1f} s")
        if manifest["params"].get("scale") is None and manifest["input"].get("observed_range"):
            low, high = manifest["input"]["observed_range"]
            print(f"note: no --scale given; observed scores range from {low:g} to {high:g} (declaring the "
                  "instrument's scale checks every score against its range)")
    return 0


def _plot(args, argv) -> int:
    from .detect import detect

    params, problems = _params(args.param, args.rule)
    reading, found = _reading(args)
    problems += found
    if args.n < 1:
        problems.append(Problem("--n", f"must be at least 1, got {args.n}"))
    if problems:
        return _fail(problems)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _fail(["plots need matplotlib: pip install 'alliance_ts[plot]'"])
    from pathlib import Path

    from . import plot
    from .files import load_frame
    from .io import check_readable, guess_format
    from .output import OutputFolder
    from .pipeline import plan

    wide = reading.pop("wide")
    date_format = reading.pop("date_format")
    job, problems, _ = plan(args.rule, dict(params), client=args.client, session=args.session, score=args.score,
                            scale=_scale(args.scale), min_sessions=args.min_sessions, context="alliance_ts",
                            **{**reading, "keep": None if wide else reading["keep"]})
    if problems or job is None:
        return _fail(problems)
    check_readable(args.input)
    folder = OutputFolder(args.out, inputs=[args.input])
    with folder:
        frame, _, job = load_frame(Path(args.input), job, fmt=guess_format(args.input, args.input_format),
                                   sheet=parse_value(args.sheet) if args.sheet is not None else None, sep=args.sep,
                                   encoding=args.encoding, decimal=args.decimal, wide=wide, keep=reading["keep"],
                                   date_format=date_format)
        res = detect(frame, args.rule, client=args.client, session=args.session, score=args.score,
                     scale=_scale(args.scale), min_sessions=args.min_sessions,
                     **{**reading, "keep": list(job.layout.keep) or None}, **params)
        return _draw(args, res, folder, plot, plt)


def _draw(args, res, folder, plot, plt) -> int:
    rater = args.rater
    from .result import group_column

    key = group_column(res.clients)
    if key is not None:
        raters = {str(r): r for r in dict.fromkeys(res.clients[key])}
        if rater is None or rater not in raters:
            return _fail([f"--rater: choose the {key} to draw, one of {', '.join(sorted(raters))}"])
        res = res.for_rater(raters[rater])
    ids = {str(c): c for c in res.clients["client"]}
    unknown = [c for c in args.clients if c not in ids]
    if unknown:
        return _fail([f"--clients: no client {', '.join(map(repr, unknown))} in the file"])
    written: list[str] = []

    def save(fig, name):
        fig.savefig(folder.path(name), dpi=110, format="png")
        written.append(name)
        plt.close(fig)

    save(plot.overview(res)[0].figure, "overview.png")
    if res.clients["included"].any():
        save(plot.panel(res, n=args.n)[0, 0].figure, "clients.png")
    else:
        reasons = res.clients["reason"].value_counts()
        print("no client could be analysed, so clients.png is not drawn: "
              + "; ".join(f"{n} x {reason}" for reason, n in reasons.items()))
    for given in args.clients:
        ax = plot.trajectory(res, ids[given])
        ax.figure.tight_layout()
        save(ax.figure, f"client_{_safe_name(given)}.png")
    folder.commit({"alliance_ts": __version__, "command": [PROG, *sys.argv[1:]], "rule": res.rule,
                   "params": _json(res.params), "outputs": written})
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0


def _json(value: Any) -> Any:
    from .files import json_safe

    return json_safe(value)


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def _rules(args, argv) -> int:
    from .rules import list_rules

    table = list_rules()
    for row in table.itertuples():
        print(f"{row.name:<13} [{row.family}] {row.summary}")
        if args.full:
            print(f"{'':13} parameters: {row.parameters}")
            print(f"{'':13} reference: {row.reference}")
    return 0


def _scales(args, argv) -> int:
    from .scales import list_scales

    for row in list_scales().itertuples():
        print(f"{row.id:<8} {row.name}: items {row.item_low:g}-{row.item_high:g}, totals "
              f"{row.total_low:g}-{row.total_high:g} (default: {row.default})")
    return 0


def _simulate(args, argv) -> int:
    from .files import json_safe
    from .io import write_table
    from .output import OutputFolder
    from .simulate import simulate

    params, problems = _params(args.param)
    if problems:
        return _fail(problems)
    with OutputFolder(args.out) as folder:
        sim = simulate(args.clients, rng=args.seed, scale=_scale(args.scale), **params)
        write_table(sim.scores, folder.path(f"scores.{args.format}"), args.format)
        write_table(sim.truth, folder.path(f"truth.{args.format}"), args.format)
        write_table(sim.clients, folder.path(f"clients.{args.format}"), args.format)
        with open(folder.path("simulation.json"), "w", encoding="utf-8") as fh:
            fh.write(json.dumps(json_safe({"alliance_ts": __version__, "seed": args.seed, **sim.params}), indent=2)
                     + "\n")
        folder.commit({"alliance_ts": __version__, "command": [PROG, *sys.argv[1:]]})
    print(f"wrote scores, truth and clients ({len(sim.scores)} scores, {len(sim.truth)} planted episodes) "
          f"to {args.out}")
    return 0


def _bench(args, argv) -> int:
    from .benchmark import SCENARIOS, run_accuracy, write_report

    unknown = [s for s in args.scenarios or [] if s not in SCENARIOS]
    if unknown:
        return _fail([f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}"])
    from .output import OutputFolder

    t0 = time.perf_counter()
    with OutputFolder(args.out) as folder:
        df = run_accuracy(args.scenarios, seeds=args.seeds, n_clients=args.clients)
        write_report(df, folder.path(""), args.seeds, args.clients, time.perf_counter() - t0)
        folder.commit({"alliance_ts": __version__, "command": [PROG, *sys.argv[1:]]})
    summary = df.groupby("rule")[["f1", "false_alarm_rate"]].mean().sort_values("f1", ascending=False)
    print(summary.round(3).to_string())
    print(f"wrote accuracy.csv, accuracy.md and plots to {args.out}")
    return 0


def _monitor(args, argv) -> int:
    from .monitor_cli import run

    return run(args, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
