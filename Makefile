# The two commands of the README: `make demo` and `make test`. Everything else is set up by them.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export UV_COMPILE_BYTECODE := 1

.PHONY: venv demo test lint bench lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q shiftover adapters flows tasks expectations deployments  # the editable project's bytecode
	touch $(STAMP)

demo: venv
	$(BIN)/shiftover demo

test: venv
	$(BIN)/python -m pytest -q

lint: venv  # what .ci/run checks before the tests: ruff (style, imports, bugbear, complexity ≤ 15) and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/migrate_pg.py --rows 1000000

lock:
	$(BIN)/uv pip compile -q pyproject.toml --extra dev -o requirements.lock

clean:
	rm -rf $(VENV) .prefect demo-data
