"""Training loops for neurocodec's models (run by `neurocodec train`)."""
