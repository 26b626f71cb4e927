# kafkaguard — the two commands of the README are `make demo` and `make test`.
# Each installs what it needs (system packages, a virtualenv from pinned versions, Kafka's jars)
# and is safe to run again.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
export KAFKAGUARD_RUN_DIR ?= $(CURDIR)/.run

.PHONY: demo test docs bench bench-quick chaos fuzz lint format system-deps venv jars promtool unit integration clean down \
	console-screenshots

demo: system-deps venv jars
	$(BIN)/python -m examples.dailyfeed.demo.main $(DEMO_ARGS)

test: system-deps venv jars promtool lint docs
	$(BIN)/python -m pytest -ra -p no:cacheprovider --durations=30 $(PYTEST_ARGS)

# The documentation site (mkdocs.yml, docs/) into build/site. --strict: any warning fails the build — a
# broken link or reference, a docstring mkdocstrings cannot render, a setting without a description.
# The settings, CLI, metrics and API references are generated from the code (docs/_hooks/).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Benchmarks (issue 9): tables on stdout, JSON in reports/bench/, summary in bench/RESULTS.md.
bench: system-deps venv jars
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: system-deps venv jars
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

unit: venv
	$(BIN)/python -m pytest -ra tests/unit $(PYTEST_ARGS)

integration: system-deps venv jars promtool
	$(BIN)/python -m pytest -ra tests/integration $(PYTEST_ARGS)

# The full chaos suite (every scenario x mode, 10,000 events each; long, not part of CI). The suite is the
# checkout's chaos/ folder (not installed with the package); `kafkaguard chaos` runs the same from a checkout.
# CHAOS_ARGS passes options, e.g. CHAOS_ARGS="--scenario broker-kill --mode outbox".
chaos: system-deps venv jars
	$(BIN)/python -m chaos --profile full --out reports/chaos $(CHAOS_ARGS)

# Property-based fuzzing (issue 13) with hypothesis's full profile: at least 10,000 generated messages
# through a real consumer and 2,000 generated rows through a real relay, counts printed at the end.
# `make test` runs the same tests with the quick profile. FUZZ_ARGS passes pytest options.
fuzz: system-deps venv jars
	KAFKAGUARD_FUZZ=full $(BIN)/python -m pytest -ra -p no:cacheprovider --timeout=7200 tests/fuzz $(FUZZ_ARGS)

# The operator console's browser tests (Playwright driving Debian's chromium), then the two screenshots the
# README shows copied from their artifacts (reports/console/, git-ignored) into docs/img/.
console-screenshots: system-deps venv jars
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/browser $(PYTEST_ARGS)
	mkdir -p docs/img
	cp reports/console/overview.png docs/img/console-overview.png
	cp reports/console/groups.png docs/img/console-groups.png

lint: venv
	$(BIN)/ruff check src tests examples bench chaos
	$(BIN)/ruff format --check src tests examples bench chaos
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format src tests examples bench chaos
	$(BIN)/ruff check --fix src tests examples bench chaos

system-deps:
	@bash scripts/install-system-deps.sh

venv: $(STAMP)

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,bench]'
	rm -f $(VENV)/.installed-*
	touch $@

jars: venv
	$(BIN)/python -c "from kafkaguard.devstack.jars import ensure_kafka_jars; from kafkaguard.devstack.stack import default_run_dir; print('Kafka jars:', ensure_kafka_jars(default_run_dir()))"

# promtool (Prometheus's rule checker) for tests/integration/test_observability_assets.py, into the run
# dir once: unpacked from Debian's prometheus package (seconds; the package is not installed, so no
# Prometheus server starts), else built with `go install` (minutes). Without either the test still runs
# its schema check and says promtool was skipped, so a failure here does not stop `make test`.
promtool: venv
	-$(BIN)/python -c "from kafkaguard.devstack.tools import ensure_promtool; from kafkaguard.devstack.stack import default_run_dir; print('promtool:', ensure_promtool(default_run_dir()))"

down: venv
	$(BIN)/kafkaguard dev down

clean: down
	rm -rf .run $(VENV)
