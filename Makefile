# The two commands (see README): `make demo` and `make test`.
# Both create .venv with a Python >= 3.12 when it is missing or out of date.
VENV ?= .venv
PY := $(VENV)/bin/python
export MPLBACKEND ?= Agg

.PHONY: demo test bench env clean
env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml .ci/bootstrap .ci/find-python
	bash .ci/bootstrap $(VENV)

demo: $(VENV)/.installed
	$(PY) -m bayesgmm demo

# One pytest worker per core (pytest-xdist), whole test files to a worker so a module's
# fitted fixtures are computed once.
PYTEST_ARGS ?= -n auto --dist loadfile
test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/em_vs_sklearn.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
