# Two entry points (see README): `make demo` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= data/demo

.PHONY: demo test env lint bench clean chromium postgresql real-eval

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel: an unpinned torch pulls several GB of CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/audiorag demo --out $(DEMO)

# The browser end-to-end tests drive Debian's chromium (no browser download is possible here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || echo "chromium not installed: tests/test_web_e2e.py will be skipped"

# The shared-state tests start Debian's real PostgreSQL server on a temp folder (tests/postgres.py).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } || echo "postgresql not installed: the PostgreSQL tests will be skipped"

test: $(STAMP) chromium postgresql
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/index_throughput.py
	$(BIN)/python bench/search_latency.py

# The held-out REAL-audio set (Debian's hydrogen-drumkits + freepats, fetched with apt-get download,
# unpacked, never installed) and the bundled CLAP's measures on it; not part of `make test`.
REAL ?= data/real-heldout
real-eval: $(STAMP)
	$(BIN)/python bench/real_audio/build.py --out $(REAL)
	$(BIN)/audiorag eval retrieval --real $(REAL)
	$(BIN)/audiorag eval retrieval --real $(REAL) --hide-names --out data/reports/eval-retrieval-real-hidden.json

clean:
	rm -rf $(VENV) data .pytest_cache
