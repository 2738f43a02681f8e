"""`python -m headend serve|import-ledger|report` (see headend/cli.py)."""
import sys

from headend.cli import main

sys.exit(main())
