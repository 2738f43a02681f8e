# Two commands on a fresh machine: `make run` and `make test` (see README.md).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

.PHONY: setup run test bench build clean

$(STAMP): requirements.txt debian-packages.txt tools/setup_host.sh
	bash tools/setup_host.sh
	touch $@

setup: $(STAMP)

run: $(STAMP)
	$(PY) tools/building.py

test: $(STAMP)
	$(PY) -m pytest -n 2 -q host_tests

bench: $(STAMP)
	$(PY) tools/bench.py

clean:
	rm -rf $(VENV) build
