# The two commands of the quick start, and the benchmark.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	exec $(BIN)/tickmesh run config/default.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The peers' SDKs go in bench/.peer-venv, made on first use. A smoke:
# BENCH_ARGS="--frames 2000 --events 5000 --count 20000 --runs 1"; one scenario: --only binance
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The whole system for 10 minutes with faults on a schedule (bench/soak.py); results in
# bench/soak.json. A smoke: SOAK_ARGS="--minutes 1"
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) bench/.peer-venv build *.egg-info .pytest_cache
