# Two commands set up a fresh machine: `make demo` and `make test`. Each creates .venv.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
DEMO_DIR ?= /tmp/neurocodec-demo

.PHONY: demo test bench bench-quick bench-cluster clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# compress and decompress the bundled sample images and text with the shipped codecs, check
# the text comes back exactly, then compare with PNG and JPEG (images; the lossless codecs
# with PNG, WebP, JPEG 2000 and JPEG XL, every decode checked pixel for pixel) and with gzip,
# bzip2, xz, zstd and brotli (text) on the same files
demo: $(VENV)/.installed
	rm -rf $(DEMO_DIR)
	$(BIN)/neurocodec compress -v --output-dir $(DEMO_DIR) tests/data/*.png tests/data/text/*.txt
	$(BIN)/neurocodec info $(DEMO_DIR)/*.ncd
	$(BIN)/neurocodec decompress --output-dir $(DEMO_DIR)/decoded $(DEMO_DIR)/*.ncd
	cmp tests/data/text/walden_excerpt.txt $(DEMO_DIR)/decoded/walden_excerpt.txt
	$(BIN)/neurocodec bench tests/data --codecs context,hyperprior,jpeg,webp,avif,jxl --qualities 25,50,75 --print-only
	$(BIN)/neurocodec bench tests/data --lossless --print-only
	$(BIN)/neurocodec bench tests/data/text --print-only

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# the full benchmarks: Kodak (lossy and lossless) and the six evaluation books (text);
# writes bench/results/
bench: $(VENV)/.installed
	$(BIN)/neurocodec bench ../shared/data/images/kodak
	$(BIN)/neurocodec bench ../shared/data/images/kodak --lossless --jobs 2
	$(BIN)/neurocodec bench ../shared/data/text/eval

# compress and decompress 48 Kodak images (the 24, twice) without an engine and with
# --engine dask on 1 and 2 local workers; prints the wall times (README "Many files")
bench-cluster: $(VENV)/.installed
	$(BIN)/python bench/cluster_kodak.py --kodak ../shared/data/images/kodak

clean:
	rm -rf $(VENV) $(DEMO_DIR)
