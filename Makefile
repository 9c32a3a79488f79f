# The two commands: `make demo` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install demo test test-fast migrate

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

demo: install
	HOST=$(HOST) PORT=$(PORT) PY=$(PY) bash bin/demo

# PYTHONNODEBUGRANGES: CPython 3.11.7 keeps the ast module's recursion depth in state shared by threads; a live
# server thread formatting a traceback (3.11 parses the source for its ^^^ carets) while pytest parses a test's
# source raised "AST constructor recursion depth mismatch" and ended a CI run with INTERNALERROR.
test: install
	PYTHONNODEBUGRANGES=1 $(PY) -m pytest

test-fast: install
	PYTHONNODEBUGRANGES=1 $(PY) -m pytest -m "not slow and not e2e"
