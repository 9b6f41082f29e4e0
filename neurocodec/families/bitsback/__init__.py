"""The `bitsback` family: net.py (the torch network), codec.py (coding), spec.py (training and export)."""
