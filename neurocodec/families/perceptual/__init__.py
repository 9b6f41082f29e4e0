"""The `perceptual` family: net.py (the context model with a conditional patch discriminator), codec.py (coding, as `context`), spec.py (HiFiC-style training and export)."""
