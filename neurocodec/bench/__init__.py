"""Benchmarks of neurocodec's codecs against the classic ones (see `images` and `baselines`).

Importing this package stays light: torch, pytorch_msssim, matplotlib and tqdm load on use.
"""

from . import baselines, images, metrics
from .baselines import BASELINES, get_baseline
from .images import bd_rates, format_table, run, summarize, write_results

__all__ = [
    "BASELINES",
    "baselines",
    "bd_rates",
    "format_table",
    "get_baseline",
    "images",
    "metrics",
    "run",
    "summarize",
    "write_results",
]
