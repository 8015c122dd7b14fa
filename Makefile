# Every step a fresh machine needs. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# One cargo target dir for every crate irc builds, so ndarray compiles once.
export CARGO_TARGET_DIR ?= $(CURDIR)/.cargo-target
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: install test lint demo bench conformance

install:
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e ".[tf,torch,dev]"
	@if [ -f irc/backends/rust/runtime/Cargo.toml ]; then cargo fetch --quiet --manifest-path irc/backends/rust/runtime/Cargo.toml; fi

# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
test: install
	$(PYTHON) -m pytest -q tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "error: no tests ran"; exit 1; fi; exit $$rc

lint: install
	$(PYTHON) -m ruff check irc tests

demo: install
	bash examples/demo.sh

bench: install
	@echo "bench: not yet implemented (issue: performance)"; exit 1
