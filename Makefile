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
# The fault stack of `make test-faults`: three Kafka brokers and a Toxiproxy in front of every
# server, with its state in .stack-faults and its own ports, so it runs beside the normal stack.
FAULTS_PORTS ?= STACK_KAFKA_PORT=9394 STACK_KAFKA_CONTROLLER_PORT=9395 STACK_S3_PORT=9390 \
	STACK_MONGO_PORT=27317 STACK_TOXIPROXY_PORT=8474 STACK_TOXIPROXY_PROXY_PORT=9470
FAULTS_STACK := STACK_DIR=.stack-faults STACK_KAFKA_BROKERS=3 STACK_TOXIPROXY=1 $(FAULTS_PORTS) $(STACK)

.PHONY: help install lint schemas helm test test-unit test-integration test-e2e test-faults soak stack-up stack-down stack-status demo demo-stop bench bench-video-path bench-segments bench-results image compose-up compose-down test-containers clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv with the package and its dev tools, fetch test videos

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,convert]'
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
	$(WITH_STACK_ENV) rc=0; $(PY) -m pytest tests -m "not soak and not faults" $(PYTEST_ARGS) || rc=$$?; $(STACK) down; exit $$rc

test-unit: install helm ## the fast tests that need no server
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install ## integration tests; leaves the stack running for the next run
	$(STACK) up
	$(WITH_STACK_ENV) $(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: install ## the whole system as processes; leaves the stack running
	$(STACK) up
	$(WITH_STACK_ENV) $(PY) -m pytest tests/e2e -m "not soak and not faults" $(PYTEST_ARGS)

test-faults: install ## broker, network and disk faults on a 3-broker cluster behind Toxiproxy (10-11 min quiet)
	$(FAULTS_STACK) up
	set -a && source .stack-faults/env && set +a && rc=0; \
	$(PY) -m pytest tests/e2e -m faults $(PYTEST_ARGS) || rc=$$?; $(FAULTS_STACK) down; exit $$rc

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
	$(FAULTS_STACK) down
	rm -rf $(VENV) .stack .stack-faults
