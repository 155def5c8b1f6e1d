# The two commands of the README are `make run` and `make test`; everything else is a step of them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
EXAMPLES := models/build
PORT ?= 8080

.PHONY: setup examples run run-single test bench clean

# A virtualenv with the pinned runtime and dev sets; redone only when a requirements file changes.
$(VENV)/.installed: requirements/runtime.txt requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $@

setup: $(VENV)/.installed

# Small real models trained on generated data, in the layout the platform unpacks.
$(EXAMPLES)/.built: $(VENV)/.installed models/*.py
	$(PY) -m models.make_examples --out $(EXAMPLES)
	touch $@

examples: $(EXAMPLES)/.built

# The server on localhost in multi-model mode, every example model loaded.
run: examples
	SAGEMAKER_MULTI_MODEL=true MODEL_SERVER_MODELS_ROOT=$(EXAMPLES) MODEL_SERVER_PRELOAD=true \
		$(PY) -m server serve --host 127.0.0.1 --port $(PORT)

# One example model in single-model mode, as an endpoint with one model runs it.
run-single: examples
	MODEL_SERVER_MODEL_DIR=$(EXAMPLES)/sklearn-iris/model $(PY) -m server serve --host 127.0.0.1 --port $(PORT)

test: setup
	$(PY) -m pytest tests

bench: examples
	$(PY) benchmarks/density.py

clean:
	rm -rf $(EXAMPLES) .pytest_cache
