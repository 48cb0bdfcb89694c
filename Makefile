# pyapprox: `make demo` runs the main job, `make test` runs every test. Both set up what they need.
PY := .venv/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test sim demo luts bench clean

setup:
	@scripts/setup.sh

test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup

sim: setup
	PYAPPROX_SIM_COVERAGE=1 $(PY) -m pytest -q -n 2 --dist loadgroup sim

demo: setup
	$(PY) -m pyapprox demo

luts: setup
	$(PY) -m pyapprox lut table -o results/luts

bench: setup
	$(PY) bench/bench_model.py

clean:
	rm -rf build results .pytest_cache
