# Both targets create .venv and install into it when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-geo demo-dicom test lint format clean constraints

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m jobs.demo

# the same with georeferenced scenes (GeoTIFF, UTM), exported as COG, GeoParquet and STAC
demo-geo: $(STAMP)
	$(BIN)/python -m jobs.demo --geo

# DICOM files pydicom ships, exported as DICOM SEG, Hugging Face and COCO, each read back by its own reader
demo-dicom: $(STAMP)
	$(BIN)/python -m jobs.demo --dicom

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

# deploy/constraints.txt: pyproject's runtime dependencies pinned as installed in .venv (run after the tests pass).
constraints: $(STAMP)
	$(BIN)/python deploy/constraints.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
