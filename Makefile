# video-runner: the commands a developer and CI run. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK := bash tools/stack/stack.sh
# Tests that need servers read their addresses from the file `make stack-up` writes.
WITH_STACK_ENV := set -a && source .stack/env && set +a &&
PYTEST_ARGS ?=

.PHONY: help install lint schemas helm test test-unit test-integration test-e2e soak stack-up stack-down stack-status demo demo-stop bench bench-video-path bench-segments bench-results image compose-up compose-down test-containers clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv with the package and its dev tools, fetch test videos

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	bash tools/fetch_test_videos.sh
	$(VENV)/bin/video-runner models install
	touch $@

lint: install ## ruff, formatting, mypy --strict and the import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

schemas: install ## regenerate the message JSON Schemas from their pydantic models
	$(PY) -m video_runner.contracts.schemas

# The chart tests (tests/unit/test_helm_chart.py) run helm: built once with `go install`, cached.
helm: ## build the helm binary the chart tests use (cached by version, minutes cold)
	bash tools/containers/helm.sh >/dev/null

test: install helm ## unit, integration and e2e tests against a local stack it starts and stops
	$(STACK) up
	$(WITH_STACK_ENV) rc=0; $(PY) -m pytest tests -m "not soak" $(PYTEST_ARGS) || rc=$$?; $(STACK) down; exit $$rc

test-unit: install helm ## the fast tests that need no server
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install ## integration tests; leaves the stack running for the next run
	$(STACK) up
	$(WITH_STACK_ENV) $(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: install ## the whole system as processes; leaves the stack running
	$(STACK) up
	$(WITH_STACK_ENV) $(PY) -m pytest tests/e2e -m "not soak" $(PYTEST_ARGS)

soak: install ## the chaos test: runner replicas killed at random while videos flow (minutes)
	$(STACK) up
	$(WITH_STACK_ENV) $(PY) -m pytest tests/e2e -m soak -s $(PYTEST_ARGS)

# The stack waits for its servers through the project's own clients (`video-runner deps wait`),
# so the targets that start or ask it need the venv; `stack-down` and `stack.sh fetch` do not.
stack-up: install ## start Kafka, the S3 server and FerretDB on 127.0.0.1 (idempotent)
	$(STACK) up

stack-down: ## stop what stack-up started (by pid file)
	$(STACK) down

stack-status: install ## say which servers run and answer
	$(STACK) status

demo: install ## the whole system: stack, runner, inference, outbox-S3, one real video through it
	$(STACK) up
	bash tools/demo.sh

demo-stop: ## stop the services `make demo` started
	bash tools/demo-stop.sh

bench: install ## extraction benchmark; writes bench/results/extract.txt (quiet machine only)
	$(PY) bench/extract.py | tee bench/results/extract.txt

bench-video-path: install ## the runner's whole video path on the local stack against ffmpeg
	$(STACK) up
	$(WITH_STACK_ENV) $(PY) bench/video_path.py | tee bench/results/video_path.txt

bench-segments: install ## one long video over one runner and over two; writes bench/results/segments.txt
	$(STACK) up
	$(WITH_STACK_ENV) $(PY) bench/segments.py | tee bench/results/segments.txt

bench-results: install ## results-path benchmark on the local stack; writes bench/results/results_path.txt
	$(STACK) up
	$(WITH_STACK_ENV) $(PY) bench/results_path.py | tee bench/results/results_path.txt

image: install ## build the video-runner image and the local server images with podman
	bash tools/containers/install.sh
	bash tools/containers/build.sh all

compose-up: image ## the containerised system (deploy/compose.yaml); host settings in .stack/compose/host.env
	bash tools/containers/compose.sh up --no-build

compose-down: ## stop the containerised system (its volumes stay; compose.sh down --purge drops them)
	bash tools/containers/compose.sh down

test-containers: install ## build the images, run the compose system, kill a runner mid-video, check the image
	bash tools/containers/test.sh

clean: demo-stop stack-down ## remove the venv and the stack's state (caches outside the repo stay)
	rm -rf $(VENV) .stack
