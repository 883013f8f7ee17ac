# Everything a newcomer needs: `make demo` and `make test` each build a local
# virtual environment (.venv) first, so they work on a fresh machine that has
# only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench docs figures venv clean

# `make bench` reruns the accuracy (about 6 min), operating-curve (about
# 6 min), scan calibration (under 1 min), speed (about 5 min), change-point
# (about 3 min), command-line (about 3 min) and monitoring (about 1 min)
# benchmarks and rewrites benchmarks/results/.

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m alliance_ts.demo --out demo_output

# `make test`: the linter (ruff), the type checker (mypy) and the whole test suite
# (unit, property-based, command line, Dask local cluster), two processes at a time.
test: $(STAMP)
	$(PY) -m ruff check alliance_ts tests benchmarks docs
	$(PY) -m mypy
	$(PY) -m pytest -n auto

bench: $(STAMP)
	$(PY) benchmarks/accuracy.py
	$(PY) benchmarks/operating.py
	$(PY) benchmarks/calibration.py
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/changepoint_speed.py
	$(PY) benchmarks/cli_speed.py
	$(PY) benchmarks/monitor.py

# `make docs` builds the documentation site into docs/_build/html (warnings are
# errors; every example is executed and every figure drawn by the build).
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

# `make figures` redraws the README's picture (docs/_static/trajectories.png).
figures: $(STAMP)
	$(PY) docs/readme_figure.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache .hypothesis .mypy_cache .ruff_cache docs/_build docs/generated
