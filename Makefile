# edge112: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
SYSTEM_TOOLS ?= openssl sox espeak-ng multimon-ng tshark postgresql chromium gcc libpri-dev debootstrap  # TLS test certificates; audio tests cross-check with sox/multimon-ng; tshark decodes LAPD/Q.931 independently; the center tests on PostgreSQL and in headless chromium; the E1 tests build a libpri peer with gcc; the install test builds a clean Debian root with debootstrap

.PHONY: demo test lint typecheck unit bench clean system-deps

system-deps:
	@scripts/ensure-system-deps.sh $(SYSTEM_TOOLS)

$(STAMP): pyproject.toml setup.py $(wildcard cython_ext/*.pyx)
	@scripts/ensure-system-deps.sh $(SYSTEM_TOOLS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edge112 demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/bench_spine.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_audio.py
	$(BIN)/python bench/bench_e1.py
	$(BIN)/python bench/bench_gsm.py
	$(BIN)/python bench/bench_center.py

clean:
	rm -rf $(VENV) build *.egg-info cython_ext/*.c cython_ext/*.so
