"""Test set-up shared by every test: firmware and drivers import as flat
modules (as they are frozen on a board), tools import as modules, and the
`micropython` shim stands in under CPython."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("host_tests/shim", "firmware", "drivers", "tools"):
    p = os.path.join(ROOT, sub)
    if p not in sys.path:
        sys.path.insert(0, p)

# Property tests check answers, not speed: a busy CI machine must not turn a
# slow example into a failure (speed lives in `make bench`).
from hypothesis import settings  # noqa: E402

settings.register_profile("project", deadline=None)
settings.load_profile("project")
