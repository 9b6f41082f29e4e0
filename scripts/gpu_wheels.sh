# Sourced by gpu_train.sh and gpu_together.sh (with $py set, in the project root): installs the
# carried wheels (.whl/: compressai, constriction, pytorch-msssim, click, which the GPU machine
# lacks) into /tmp/site once per machine, and puts it and the project on PYTHONPATH.
site=/tmp/site
if ! $py -c "import constriction, compressai, click" 2>/dev/null && [ ! -f "$site/.installed" ]; then
    $py -m pip install -q --no-index --no-deps --target "$site" .whl/*.whl \
        || { echo "could not install the carried wheels (.whl/)" >&2; exit 2; }
    touch "$site/.installed"
fi
export PYTHONPATH="$site:$PWD"
