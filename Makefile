# One task runner for humans and CI.  `make help` lists the targets.
PY ?= .venv/bin/python

.PHONY: help venv develop test bench bench-quick lint
help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

venv:  ## create .venv with the test and bench extras (builds the extension)
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[test,bench]'

develop:  ## rebuild the extension in place after a Rust change
	VIRTUAL_ENV=$(CURDIR)/.venv .venv/bin/maturin develop --release

test:  ## the whole test suite (what .ci/run runs)
	$(PY) -m pytest

bench:  ## the side-by-side benchmark against Twisted, full run
	$(PY) -m txdefer bench --json bench-results.json --plot bench-results.svg

bench-quick:  ## the benchmark in under a minute
	$(PY) -m txdefer bench --quick

lint:  ## clippy (warnings are errors) and ruff
	cargo clippy --all-targets -- -D warnings
	$(PY) -m ruff check python tests benches
