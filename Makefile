# The two commands of the quick start (make run, make test), the benchmark and the soak.
#
# Python: the first of python3, python3.13, python3.12, python3.11 on the PATH that is 3.11 or
# newer (or PYTHON=/path/to/python). `make run` installs what the system needs; `make test`
# adds the test tools (the [test] extra).
PYTHON ?= $(shell for candidate in python3 python3.13 python3.12 python3.11; do \
	$$candidate -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { echo $$candidate; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
SYSTEM := $(VENV)/.installed-system
TESTS := $(VENV)/.installed-test
BENCH := $(VENV)/.installed-bench
# setuptools says of every editable install of a layout like ours (bus/ is tickmesh.bus, ...)
# "Editable installation. Please be careful with folders in your working directory with the
# same name as your package": here that folder is tickmesh/, the package's own source, so the
# note is silenced (that one only: any other warning still shows).
INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet

.PHONY: run test bench soak clean python

python:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "tickmesh needs Python 3.11 or newer, and none of python3, python3.13, python3.12," \
	       "python3.11 on the PATH is (python3 here: $$(python3 --version 2>&1 || echo none))." >&2; \
	  echo "Install one (e.g. apt install python3.11 python3.11-venv), or name it:" \
	       "make run PYTHON=/path/to/python3.12" >&2; \
	  exit 1; fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "PYTHON=$(PYTHON) is $$($(PYTHON) --version 2>&1); tickmesh needs 3.11 or newer" >&2; \
	  exit 1; }

$(VENV)/bin/python: | python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(SYSTEM): pyproject.toml | $(VENV)/bin/python
	$(INSTALL) -e .
	touch $(SYSTEM)

$(TESTS): $(SYSTEM)
	$(INSTALL) -e '.[test]'
	touch $(TESTS)

run: $(SYSTEM)
	exec $(BIN)/tickmesh run config/default.toml

# Two workers (pytest-xdist): the tests mostly wait on processes and sockets, so two at a time
# halve the suite on 2 cores (~6 min); tests on fixed ports share one xdist_group.
test: $(TESTS)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

$(BENCH): $(SYSTEM)
	$(INSTALL) -e '.[bench]'
	touch $(BENCH)

# Every scenario (bench/__main__.py), 3 runs each: ~7 minutes on 2 cores, plus, the first
# time, making bench/.peer-venv for the peers' SDKs (~20 s to a few minutes).
# A smoke of everything in ~1 minute:
# BENCH_ARGS="--frames 2000 --events 5000 --count 20000 --seconds 0.5 --runs 1";
# one scenario: BENCH_ARGS="--only latency" (alpaca, binance, kraken, recorder, latency, fanout,
# slow, symbols, lines, sdk).
bench: $(BENCH)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The books' property test in its long mode (3000 examples: ~30 s on 2 cores; its own timeout,
# as the suite's 60 s per test is for the bounded mode), then the whole system for 10 minutes
# with faults on a schedule and the books checked against the simulators' true books
# (bench/soak.py); results in bench/soak.json. A smoke: SOAK_ARGS="--minutes 1"
soak: $(TESTS)
	TICKMESH_PROPERTY_EXAMPLES=3000 $(BIN)/python -m pytest -q --timeout 600 \
	  tests/test_books_property.py
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) bench/.peer-venv build *.egg-info .pytest_cache
