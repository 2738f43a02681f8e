#!/usr/bin/env python3
"""The head-end from tools/: the same as `python -m headend` (headend/cli.py)."""
import sys

import hostpath  # noqa: F401
from headend.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
