# `make demo` and `make test` set up .venv first when it is missing or out of date.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: env demo demo-quick test test-fast lint format clean-env

env: $(STAMP)

$(STAMP): constraints.txt requirements.txt setup.py tools/setup_env.sh tools/build_mmcv_wheel.sh
	bash tools/setup_env.sh
	touch $@

demo: $(STAMP)
	$(PY) tools/demo.py

demo-quick: $(STAMP)
	$(PY) tools/demo.py --quick

test: $(STAMP)
	$(PY) -m pytest tests --durations=15

# Ruff: lint and format check (CI runs it before the tests); `make format` rewrites the files.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Everything but the end-to-end runs marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

clean-env:
	rm -rf $(VENV)
