"""``python -m sufast``: the ``sufast`` command line (see ``sufast.cli``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
