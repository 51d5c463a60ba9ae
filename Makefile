# The two commands of the README contract: `make demo` and `make test`.
# Both bootstrap .venv when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Label Studio itself, in its own environment (its Django pins would fight
# annot's); the integration tests start it on 127.0.0.1.
LS_VENV    := .venv-ls
LS_VERSION := 1.23.2
LS_STAMP   := $(LS_VENV)/.installed-$(LS_VERSION)

.PHONY: demo test labelstudio lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[ml,serve,dev]'
	touch $(STAMP)

$(LS_STAMP):
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'label-studio==$(LS_VERSION)'
	touch $(LS_STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

labelstudio: $(LS_STAMP)

test: $(STAMP) $(LS_STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check core converters plugins active_learning db serve training tests examples benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/convert.py

clean:
	rm -rf $(VENV) $(LS_VENV) build *.egg-info .pytest_cache
