"""The `vq` family: net.py (the residual-VQ VAE and its index prior), codec.py (coding), spec.py (training and export)."""
