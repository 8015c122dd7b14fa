# Every step a fresh machine needs. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# One cargo target dir for every crate irc builds, so ndarray compiles once.
export CARGO_TARGET_DIR ?= $(CURDIR)/.cargo-target
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: install test lint demo bench bench-quick conformance

# Python packages at the tested versions; crates (ndarray, pyo3, numpy) come from crates.io on
# the first cargo build into the shared CARGO_TARGET_DIR.
install:
	@command -v cargo >/dev/null || { echo "error: cargo not found (install Rust with rustup)"; exit 2; }
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e ".[tf,torch,dev,bench]"
	@$(MAKE) --no-print-directory openblas

# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
test: install
	$(PYTHON) -m pytest -q tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "error: no tests ran"; exit 1; fi; exit $$rc

lint: install
	$(PYTHON) -m ruff check irc tests

demo: install
	bash examples/demo.sh

# Full suite (7 models, batch 1 and 8, 1 and 2 threads) against onnxruntime and tract, plus the
# runtime GEMM micro-benchmark: writes bench/results.json and bench/results.md, then checks the bars.
bench: install
	$(PYTHON) bench/run.py
	$(PYTHON) bench/check_bars.py bench/results.json

# Short mode for CI: 3 small models, batch 1, 1 thread, short budget; writes bench/results-quick.*.
# Gates on correctness (every engine verified against onnxruntime); timing bars are printed,
# not gated: a shared CI machine is too noisy for that (make bench gates on every bar).
bench-quick: install
	$(PYTHON) bench/run.py --quick --out bench/results-quick.json
	$(PYTHON) bench/check_bars.py bench/results-quick.json --timing-advisory

# All ONNX node test cases through import -> optimize -> emit -> build -> run (batched into few crates).
conformance: install
	$(PYTHON) scripts/conformance.py

# irc optimize (level 2) vs onnxsim vs onnxslim, plus peak RSS on a >2 GB model:
# writes bench/optimize/results.json and bench/optimize/results.md.
.PHONY: bench-optimize
bench-optimize: install
	$(PYTHON) bench/optimize/run.py

# The system OpenBLAS for generated crates' optional `blas` feature (tests/backends/test_blas_feature.py).
# Installed with apt-get when missing (Debian/Ubuntu, as root); elsewhere the blas test is skipped.
.PHONY: openblas
openblas:
	@if ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so '; then :; \
	elif command -v apt-get >/dev/null; then \
		echo "installing libopenblas-dev (apt-get)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends libopenblas-dev >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends libopenblas-dev >/dev/null; } || \
		{ echo "error: apt-get could not install libopenblas-dev"; exit 2; }; \
	else echo "note: no apt-get; install OpenBLAS (libopenblas.so) yourself for the blas feature"; fi
