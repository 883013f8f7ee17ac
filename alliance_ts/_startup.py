"""Interrupts while the ``alliance-ts`` command is still starting (importing numpy, pandas, ...).

Until :func:`alliance_ts.cli.main` runs, nothing has been read or written,
but a Ctrl-C (SIGINT) or SIGTERM would print a traceback from deep inside an
import (or an ImportError, when it lands inside a compiled module). When the
package is imported by the ``alliance-ts`` script, these signals instead end
the process at once with the command's own message and exit status; ``main``
then puts the usual handling back. Importing the library anywhere else
(Python, a notebook) changes no signal handler.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

__all__ = ["quiet_start"]


def _out_folder(argv: list[str]) -> str | None:
    """The ``--out`` value of the command line, if any (for the message)."""
    for i, arg in enumerate(argv):
        if arg == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--out="):
            return arg.split("=", 1)[1]
    return None


def _stop(signum: int, frame: Any) -> None:
    what = "interrupted" if signum == signal.SIGINT else "terminated"
    out = _out_folder(sys.argv[1:])
    where = f" in {out!r}" if out else ""
    os.write(2, f"alliance-ts: {what}; nothing was written{where} (an earlier output there is unchanged)\n".encode())
    os._exit(130 if signum == signal.SIGINT else 143)


def quiet_start() -> None:
    """When the ``alliance-ts`` script is starting, make SIGINT and SIGTERM end it with a message."""
    if os.path.basename(sys.argv[0] if sys.argv else "") != "alliance-ts":
        return
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


quiet_start()  # on import: the package imports this module before anything heavy
