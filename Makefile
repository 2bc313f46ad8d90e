# Developer tasks (CONTRIBUTING.md).  `make help` lists them.  PYTHON is the environment's python
# with the package installed (pip install -e ".[train,test,board,lint]" -c constraints.txt).
PYTHON ?= python

# The C, C++ and CUDA sources under .clang-format; the generated headers are written by the
# package (python -m lenet5_pynq.export hls, python -m lenet5_pynq.gpu header) and left as written.
C_SOURCES := $(filter-out %/generated/%,$(wildcard \
	hls_src/*.h hls_src/*.cpp hls_src/tb/*.cpp \
	cuda/include/*.h cuda/src/*.h cuda/src/*.cu cuda/src/*.cuh \
	lenet5_pynq/native/*.c lenet5_pynq/native/*.h))
# The lint extra's clang-format (pinned: other versions format differently), else the one on PATH.
CLANG_FORMAT ?= $(shell $(PYTHON) -c "import clang_format; print(clang_format.get_executable('clang-format'))" \
	2>/dev/null || echo clang-format)

.PHONY: help lint format test test-fast csim gpu wheel

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

lint:  ## ruff check, ruff format --check, clang-format --dry-run (pip install -e ".[lint]")
	@status=0; \
	(set -x; $(PYTHON) -m ruff check .) || status=1; \
	(set -x; $(PYTHON) -m ruff format --check --output-format concise .) || status=1; \
	(set -x; $(CLANG_FORMAT) --dry-run -Werror $(C_SOURCES)) || status=1; \
	exit $$status

format:  ## apply ruff format and clang-format (then review the diff)
	$(PYTHON) -m ruff format .
	$(CLANG_FORMAT) -i $(C_SOURCES)

test:  ## the full suite, as README.md runs it (about 7 minutes on 2 cores)
	$(PYTHON) -m pytest -q -rs

test-fast:  ## the suite without the long acceptance runs (pytest -m "not slow")
	$(PYTHON) -m pytest -q -m "not slow"

csim:  ## the HLS C simulation: build the testbench, run it on the 10,000 test images
	$(MAKE) -C hls_src csim PYTHON=$(PYTHON)

gpu:  ## build the CUDA library (nvcc; ARCH=sm_90 for one architecture)
	$(PYTHON) -m lenet5_pynq.gpu build $(if $(ARCH),--arch $(ARCH))

wheel:  ## the wheel, in dist/
	$(PYTHON) -m pip wheel --no-deps -w dist .
