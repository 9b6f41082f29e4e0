"""One package per model family; each registers itself with `neurocodec.registry`."""
