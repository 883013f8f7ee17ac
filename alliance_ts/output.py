"""Output folders written whole or not at all.

Every command that writes files (``alliance-ts detect``, ``plot``,
``simulate``, ``bench``) writes them into a temporary folder beside ``--out``
(``.NAME.partial-PID-XXXX``) and, when everything is written, swaps it in
place of ``--out``. An interrupted or failed run (Ctrl-C, SIGTERM, an error)
removes the temporary folder and leaves the previous output set untouched
(or no folder); a later run cleans up after a run that was killed outright
(``kill -9``, a power cut). Files and folders get the permissions the umask
gives.

``--out`` is checked before the input is read: it must not be a file (such
as the input file), must not contain the input, and may be a new folder, an
empty one, or a previous output folder of alliance-ts (recognised by its
``manifest.json`` listing every file in it), which is replaced as a whole. A
folder holding anything else is refused, so that no user file is ever
deleted.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InvalidInputError, Problem

__all__ = ["MANIFEST", "OutputFolder", "Terminated", "signals_blocked"]

MANIFEST = "manifest.json"


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (see :func:`raise_on_sigterm`)."""


def raise_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated`, so that clean-up code runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover - CLI runs in main
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Defer SIGINT and SIGTERM for the duration (delivered afterwards)."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask"):
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    else:  # pragma: no cover - other platforms or threads
        yield


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


#: Targets put in place by this process (so that an interrupt that arrives
#: during the final swap is reported as coming after the outputs were written).
COMMITTED: set[str] = set()


class OutputFolder:
    """A folder of output files that appears complete or not at all.

    Use as a context manager; write files under :meth:`path`, then call
    :meth:`commit`. Leaving the block without committing (an exception, an
    interrupt) removes everything written.

    Parameters
    ----------
    target : path
        The folder the user named (``--out``).
    inputs : iterable of path
        Input files, which must not be the target or lie inside it.
    option : str
        How the user named the target in messages (``"--out"``).
    """

    def __init__(self, target: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), option: str = "--out"):
        self.target = Path(target)
        self.inputs = [Path(p) for p in inputs]
        self.option = option
        self.tmp: Path | None = None
        self.committed = False

    # -- checks ------------------------------------------------------------

    def problems(self) -> list[Problem]:
        """Why the target cannot be used (empty when it can); nothing is created."""
        where = f"{self.option} {str(self.target)!r}"
        target = self.target
        if target.is_symlink():
            return [Problem(self.option, f"{str(target)!r} is a symbolic link; name the folder itself "
                            f"({str(target.resolve())!r}) or a new one")]
        resolved = target.resolve()
        for inp in self.inputs:
            try:
                same = inp.exists() and target.exists() and os.path.samefile(inp, target)
            except OSError:
                same = False
            if same:
                return [Problem(self.option, f"{str(target)!r} is the input file; name a folder for the outputs")]
            if resolved in inp.resolve().parents:
                return [Problem(self.option, f"the input {str(inp)!r} is inside {str(target)!r}, which is replaced "
                                "as a whole: name another folder for the outputs")]
        if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents:
            return [Problem(self.option, f"{str(target)!r} is the current folder (or holds it), which would be "
                            "replaced as a whole: name a folder inside it, such as 'labels'")]
        if target.exists() and not target.is_dir():
            return [Problem(self.option, f"{str(target)!r} is a file, not a folder; name a new folder (or a "
                            "previous output folder of alliance-ts, which is replaced)")]
        if target.is_dir():
            foreign = self._foreign_entries()
            if foreign:
                shown = ", ".join(repr(n) for n in foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                return [Problem(self.option, f"{str(target)!r} holds files that are not a previous alliance-ts "
                                f"output ({shown}); name a new or empty folder, so that nothing of yours is "
                                "replaced")]
        ancestor = target.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            return [Problem(self.option, f"cannot create {where}: {str(ancestor)!r} is not a folder")]
        return []

    def _foreign_entries(self) -> list[str]:
        """Entries of the existing target that are not listed by its alliance-ts manifest."""
        entries = sorted(os.listdir(self.target))
        if not entries:
            return []
        listed: set[str] = set()
        manifest = self.target / MANIFEST
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError, UnicodeDecodeError):
                data = None
            if isinstance(data, dict) and "alliance_ts" in data and isinstance(data.get("outputs"), list):
                listed = {str(n) for n in data["outputs"]} | {MANIFEST}
        return [e for e in entries if e not in listed]

    # -- the temporary folder ----------------------------------------------

    def __enter__(self) -> OutputFolder:
        problems = self.problems()
        if problems:
            raise InvalidInputError(problems, "alliance_ts")
        with signals_blocked():
            try:
                self.target.parent.mkdir(parents=True, exist_ok=True)
                self._clean_stale()
                self.tmp = self._new(f".{self.target.name}.partial-{os.getpid()}-")
            except OSError as err:
                raise InvalidInputError(
                    [Problem(self.option, f"cannot write in {str(self.target.parent)!r}: {err.strerror or err}")],
                    "alliance_ts",
                ) from None
        return self

    def _new(self, prefix: str) -> Path:
        for _ in range(100):
            path = self.target.parent / f"{prefix}{secrets.token_hex(4)}"
            try:
                os.mkdir(path)  # mode 0777 minus the umask
            except FileExistsError:  # pragma: no cover - a clash of 32 random bits
                continue
            return path
        raise OSError(f"cannot create a temporary folder in {str(self.target.parent)!r}")  # pragma: no cover

    def _clean_stale(self) -> None:
        """Remove temporary folders left by killed runs for the same target."""
        for kind in ("partial", "old"):
            for path in self.target.parent.glob(f".{self.target.name}.{kind}-*-*"):
                try:
                    pid = int(path.name.rsplit("-", 2)[-2])
                except ValueError:
                    continue
                if pid != os.getpid() and not _alive(pid) and path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)

    def path(self, name: str) -> Path:
        """Where to write the output file ``name``."""
        if self.tmp is None:
            raise RuntimeError("the output folder is not open")
        return self.tmp / name

    def commit(self, manifest: dict[str, Any] | None = None) -> list[str]:
        """Write the manifest (listing every file written) and put the folder in place.

        Returns the names of the files, manifest included.
        """
        if self.tmp is None:
            raise RuntimeError("the output folder is not open")
        names = sorted(p.name for p in self.tmp.iterdir() if p.name != MANIFEST)
        if manifest is not None:
            manifest = {**manifest, "outputs": manifest.get("outputs", names)}
            with open(self.tmp / MANIFEST, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(manifest, indent=2) + "\n")
        with signals_blocked():
            old = None
            try:
                if self.target.exists():
                    old = self._new(f".{self.target.name}.old-{os.getpid()}-")
                    os.rmdir(old)
                    os.rename(self.target, old)
                os.rename(self.tmp, self.target)
            except BaseException:
                if old is not None and old.exists() and not self.target.exists():
                    os.rename(old, self.target)  # put the previous set back
                raise
            self.committed = True
            COMMITTED.add(os.path.abspath(self.target))
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return names + ([MANIFEST] if manifest is not None else [])

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.committed or self.tmp is None:
            return
        with signals_blocked():
            shutil.rmtree(self.tmp, ignore_errors=True)
