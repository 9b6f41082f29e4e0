"""The `vqlossless` family: net.py (the pixel model given a vq codec's code vectors), codec.py (coding), spec.py (training and export)."""
