# Two commands on a fresh machine: `make run` and `make test` (see README.md).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

.PHONY: setup run test bench soak glyphs screens bundle unix-board clean

$(STAMP): requirements.txt debian-packages.txt tools/setup_host.sh
	bash tools/setup_host.sh
	touch $@

setup: $(STAMP)

run: $(STAMP)
	$(PY) tools/building.py

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q host_tests

bench: $(STAMP)
	$(PY) tools/bench.py

# Issue 10's soak: 10,000 purchases over 32 simulated meters with random card
# pulls, bus faults and power cuts; exactly once, to the fen (minutes).
soak: $(STAMP)
	$(PY) tools/soak_topup.py --purchases 10000 --meters 32

# The glyph subset and the approved screen images are generated; `make test`
# fails when either is stale. Regenerate, then review docs/screens/ by eye.
glyphs: $(STAMP)
	$(PY) tools/build_glyphs.py

screens: $(STAMP)
	$(PY) tools/render_screens.py --approve

# The vendor's path (README "Vendor: build, flash, provision, self-test"):
# the bundle and factory image of a board, and the unix board as a board
# that mpremote reaches on build/board.tty (Ctrl-C stops it).
BOARD ?= unix
bundle: $(STAMP)
	$(PY) tools/build_bundle.py $(BOARD)

unix-board: $(STAMP)
	$(PY) tools/unix_board.py --loopback

clean:
	rm -rf $(VENV) build
