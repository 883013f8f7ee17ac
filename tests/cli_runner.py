"""Running the installed ``alliance-ts`` command as a user would (a subprocess), shared by the tests."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "alliance-ts"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "alliance_ts"]


def run(*args, cwd, env=None, umask=None):
    """Run the command in ``cwd``; returns (exit status, stdout, stderr).

    ``env`` adds environment variables; ``umask`` is set in the child before it starts.
    """
    def preexec():
        if umask is not None:
            os.umask(umask)

    done = subprocess.run(COMMAND + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}, preexec_fn=preexec)
    return done.returncode, done.stdout, done.stderr
