# Two commands set up a fresh machine: `make demo` and `make test`. Each creates .venv.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
DEMO_DIR ?= /tmp/neurocodec-demo

.PHONY: demo test bench bench-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# compress and decompress the bundled sample images with the shipped codecs, then compare
# them with PNG and JPEG on the same images
demo: $(VENV)/.installed
	rm -rf $(DEMO_DIR)
	$(BIN)/neurocodec compress -v --output-dir $(DEMO_DIR) tests/data/*.png
	$(BIN)/neurocodec info $(DEMO_DIR)/*.ncd
	$(BIN)/neurocodec decompress --output-dir $(DEMO_DIR)/decoded $(DEMO_DIR)/*.ncd
	$(BIN)/neurocodec bench tests/data --codecs hyperprior,png,jpeg --qualities 25,50,75 --print-only

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# the full benchmark on Kodak: writes bench/results/ (tables, RD plot, BD-rates)
bench: $(VENV)/.installed
	$(BIN)/neurocodec bench ../shared/data/images/kodak

clean:
	rm -rf $(VENV) $(DEMO_DIR)
