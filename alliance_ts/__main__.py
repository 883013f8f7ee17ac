"""``python -m alliance_ts`` runs the ``alliance-ts`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
