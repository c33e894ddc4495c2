# The two set-up commands of the README. Both install what they need first (scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo model test test-all docs bench clean

setup:
	@bash scripts/setup.sh

## demo: the main job on the embedded defaults (its first lines are cktflow's own: setup is quiet)
demo: setup
	@$(VENV)/bin/cktflow generate --spec examples/spec.yaml -o generated/example-opamp

## model: train the shipped model by the default recipe (CPU; resumable) and install it
model: setup
	$(VENV)/bin/cktflow train --recipe default -o runs/default --resume --ship

## test: the default test run (fast; slow tests are marked and skipped)
test: setup
	$(PY) -m pytest -q

## test-all: every test, slow and integration included
test-all: setup
	$(PY) -m pytest -q -m ''

## docs: regenerate docs/cli.md from the click commands (a test fails when it is stale)
docs: setup
	$(PY) -m cktflow.cli.docs

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
