# The two commands of the README are `make run` and `make test`; everything else is a step of them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
EXAMPLES := models/build
PORT ?= 8080

.PHONY: setup examples run run-single test lint fast bench clean local-endpoint

# A virtualenv with the pinned runtime and dev sets; redone only when a requirements file changes.
# scripts/install.sh is the images' install step too, so CI exercises the path the images take.
$(VENV)/.installed: requirements/runtime.txt requirements/dev.txt scripts/install.sh
	PYTHON=$(PYTHON) sh scripts/install.sh $(VENV) requirements/dev.txt --quiet
	touch $@

setup: $(VENV)/.installed

# Small real models trained on generated data, in the layout the platform unpacks.
$(EXAMPLES)/.built: $(VENV)/.installed models/*.py
	$(PY) -m models.make_examples --out $(EXAMPLES)
	touch $@

examples: $(EXAMPLES)/.built

# The server on localhost in multi-model mode, every example model loaded.
run: examples
	SAGEMAKER_MULTI_MODEL=true MODEL_SERVER_MODELS_ROOT=$(EXAMPLES) MODEL_SERVER_PRELOAD=true \
		$(PY) -m server serve --host 127.0.0.1 --port $(PORT)

# One example model in single-model mode, as an endpoint with one model runs it.
run-single: examples
	MODEL_SERVER_MODEL_DIR=$(EXAMPLES)/sklearn-iris/model $(PY) -m server serve --host 127.0.0.1 --port $(PORT)

# A local SageMaker endpoint on 127.0.0.1:$(PORT): sagemaker, sagemaker-runtime, S3, SNS and SQS on one
# port (docs/local-endpoint.md); instances run this server as the platform runs the image
# (RUNNER=docker: each container is the model's Image, run by docker).
local-endpoint: setup
	$(PY) -m local serve --port $(PORT) $(if $(RUNNER),--runner $(RUNNER))

# Lint, types and the in-process tier take seconds; then every real-server test over HTTP.
test: lint fast
	$(PY) -m pytest tests --ignore=tests/fast

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

fast: setup
	$(PY) -m pytest tests/fast -q

bench: examples
	$(PY) benchmarks/density.py

clean:
	rm -rf $(EXAMPLES) .pytest_cache

# ---------------------------------------------------------------- container images (docs/images.md)
# image-x86 ... docker-run-multi need a Docker engine with buildx (and QEMU binfmt to build the
# other architecture); nothing above does. `make test` checks the Dockerfiles without one
# (tests/test_images.py); `make image-test` builds and runs the x86 image with buildah (root).
IMAGE ?= sagemaker-model-server
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# PyTorch's CPU-only wheel index (the Dockerfiles' default too): PyPI's x86_64 torch is a CUDA build.
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
AWS_REGION ?= $(shell aws configure get region 2>/dev/null)
# Where to push: empty means the ECR repository $(IMAGE) in $(AWS_REGION), created if missing.
REPOSITORY ?=
HOST_ARCH := $(shell uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')
RUN_IMAGE ?= $(IMAGE):$(VERSION)-$(HOST_ARCH)

DOCKER_BUILD = docker buildx build --provenance=false --build-arg TORCH_INDEX_URL=$(TORCH_INDEX_URL) --build-arg VERSION=$(VERSION)
REPO_URI = $(if $(REPOSITORY),echo $(REPOSITORY),aws ecr describe-repositories --region $(AWS_REGION) \
	--repository-names $(IMAGE) --query 'repositories[0].repositoryUri' --output text 2>/dev/null \
	|| aws ecr create-repository --region $(AWS_REGION) --repository-name $(IMAGE) \
	--image-scanning-configuration scanOnPush=true --query 'repository.repositoryUri' --output text)
LOGIN = $(if $(REPOSITORY),true,aws ecr get-login-password --region $(AWS_REGION) \
	| docker login --username AWS --password-stdin "$${uri%%/*}")

.PHONY: image-test image-test-arm64 image-tools torch-index image-x86 image-arm64 image-multiarch ecr-push docker-run-single docker-run-multi check-images

torch-index:
	@test -n "$(TORCH_INDEX_URL)" || { echo "TORCH_INDEX_URL is empty: PyTorch's CPU wheel index (docs/images.md)" >&2; exit 1; }

# ---- built and run here, no Docker engine (docs/images.md, "Verified here"): root, Debian's
# buildah and debootstrap (installed if missing). The build takes pip's sources from this
# machine's pip configuration (scripts/image_build.sh); scripts/image_drive.py runs the image's
# root filesystem with its own entry point, environment and user and drives it over HTTP.
IMAGE_TEST_TAG ?= $(IMAGE):image-test

image-tools:
	@test "$$(id -u)" = 0 || { echo "image-test needs root (buildah, chroot, mounts)" >&2; exit 1; }
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null; }

image-test: setup image-tools
	VERSION=$(VERSION) sh scripts/image_build.sh Dockerfile.x86 $(IMAGE_TEST_TAG) $(PY)
	$(PY) scripts/image_drive.py $(IMAGE_TEST_TAG)

# Dockerfile.arm64 built and driven the same way on an x86 machine, under qemu-user (binfmt_misc,
# F flag), as a Graviton3-like CPU (SVE 256-bit, BF16). Not in CI: about 10 min once its base is made, 40 min more to make it (docs/images.md).
image-test-arm64: setup image-tools
	@command -v qemu-aarch64-static >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null; }
	sh scripts/binfmt_arm64.sh
	VERSION=$(VERSION) sh scripts/image_build.sh Dockerfile.arm64 $(IMAGE_TEST_TAG)-arm64 $(PY)
	$(PY) scripts/image_drive.py $(IMAGE_TEST_TAG)-arm64 --emulate-graviton3

# One image per architecture, tagged VERSION-amd64 / VERSION-arm64, loaded into the local engine.
image-x86: torch-index
	$(DOCKER_BUILD) --platform linux/amd64 -f Dockerfile.x86 -t $(IMAGE):$(VERSION)-amd64 --load .

image-arm64: torch-index
	$(DOCKER_BUILD) --platform linux/arm64 -f Dockerfile.arm64 -t $(IMAGE):$(VERSION)-arm64 --load .

# Both architectures pushed, then joined into one manifest list REPOSITORY:VERSION (a list lives in
# a registry, so this pushes).
image-multiarch: torch-index
	@set -e; uri=$$($(REPO_URI)); $(LOGIN); \
	$(DOCKER_BUILD) --platform linux/amd64 -f Dockerfile.x86 -t $$uri:$(VERSION)-amd64 --push .; \
	$(DOCKER_BUILD) --platform linux/arm64 -f Dockerfile.arm64 -t $$uri:$(VERSION)-arm64 --push .; \
	docker buildx imagetools create -t $$uri:$(VERSION) $$uri:$(VERSION)-amd64 $$uri:$(VERSION)-arm64; \
	docker buildx imagetools inspect $$uri:$(VERSION)

# The images built by image-x86 / image-arm64, pushed by version and architecture, plus the
# manifest list VERSION over those pushed.
ecr-push:
	@set -e; uri=$$($(REPO_URI)); $(LOGIN); pushed=""; \
	for arch in amd64 arm64; do \
		if docker image inspect $(IMAGE):$(VERSION)-$$arch >/dev/null 2>&1; then \
			docker tag $(IMAGE):$(VERSION)-$$arch $$uri:$(VERSION)-$$arch; \
			docker push $$uri:$(VERSION)-$$arch; pushed="$$pushed $$uri:$(VERSION)-$$arch"; \
		fi; \
	done; \
	test -n "$$pushed" || { echo "no $(IMAGE):$(VERSION)-* image: make image-x86 or image-arm64 first" >&2; exit 1; }; \
	docker buildx imagetools create -t $$uri:$(VERSION) $$pushed; \
	echo "pushed$$pushed and $$uri:$(VERSION)"

# The image of this machine's architecture, as the platform runs it (`docker run IMAGE serve`).
docker-run-single: examples
	docker run --rm -p 127.0.0.1:$(PORT):8080 \
		-v $(CURDIR)/$(EXAMPLES)/sklearn-iris/model:/opt/ml/model:ro $(RUN_IMAGE) serve

docker-run-multi: examples
	docker run --rm -p 127.0.0.1:$(PORT):8080 -e SAGEMAKER_MULTI_MODEL=true -e MODEL_SERVER_PRELOAD=true \
		-v $(CURDIR)/$(EXAMPLES):/opt/ml/models:ro $(RUN_IMAGE) serve

# The image checks and the acceleration report's tests alone (part of `make test`).
check-images: setup
	$(PY) -m pytest tests/test_images.py tests/test_acceleration.py
