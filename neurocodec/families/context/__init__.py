"""The `context` family: a hyperprior with a two-pass checkerboard context (He et al. 2021)."""
