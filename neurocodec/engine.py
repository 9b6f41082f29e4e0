"""Files fanned out over a dask.distributed cluster (`neurocodec compress --engine dask`).

The command keeps every file-system effect in its own process (the client): it names and
checks each output, reads the input, and after a worker has coded the bytes it writes the
output atomically, reports and removes sources exactly as without an engine. A worker runs
a pure function from bytes to bytes (`cli._compress_file`, `cli._decompress_file`), so the
cluster needs no file system shared with the client, and a worker that dies can neither leave
half a file nor delete a source. Codecs load once per worker process: workers are long-lived
and `neurocodec.load_codec` keeps what it loaded for the life of the process.

Why dask and not Ray (measured on the 2-core test machine, local cluster of 2 worker
processes running a trivial task; see README "Many files on a cluster"): dask.distributed
starts in 0.95 s with 4 processes and 207 MiB resident in all, and installs 44 MB of pure
Python; Ray takes 4.3 s, 10 processes and 801 MiB, and installs 259 MB with a compiled core.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Callable

from .errors import NeurocodecError

INSTALL_HINT = "pip install 'neurocodec[cluster]'"


class EngineError(NeurocodecError):
    """The cluster cannot be started or reached, or its workers cannot run neurocodec."""


def _worker_info() -> tuple[str, int]:
    """Run on each worker: the neurocodec version it imports and its process id."""
    import neurocodec

    return neurocodec.__version__, os.getpid()


def worker_loads() -> dict[str, int]:
    """Run on each worker: how many times codec weights were read from disk there."""
    from . import registry

    return {"weights_read": registry._load_folder.cache_info().misses}


class Cluster:
    """A dask.distributed client, connected to the scheduler at `address` or to a local
    cluster of `workers` processes (default: one per core) with one thread each (dask's
    workers run torch, numpy and BLAS on one thread: OMP_NUM_THREADS=1 and the like)."""

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.address, self.requested = address, workers
        self.client = self.local = None

    def __enter__(self) -> "Cluster":
        return self if self.client is not None else self.start()

    def start(self) -> "Cluster":
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise EngineError(f"--engine dask needs dask.distributed: {INSTALL_HINT}") from None
        for name in ("distributed", "tornado", "bokeh"):  # its log lines are not ours to print: a failure
            logging.getLogger(name).setLevel(logging.CRITICAL)  # is reported once, on one line, by the command
        dask.config.set({
            # a file whose worker dies (out of memory) is tried once more, then reported; the
            # scheduler gives a worker one file per thread at a time (no more queued there), so
            # no other file is on a worker when it dies
            "distributed.scheduler.allowed-failures": 1,
            "distributed.scheduler.worker-saturation": 1.0,
            # the local workers' environment: one thread for torch, numpy and BLAS, as dask
            # sets it, but without its MALLOC_TRIM_THRESHOLD_=65536, under which glibc gives
            # memory back after every large array and idf took twice the CPU time (3.7 s
            # instead of 1.8 s to encode kodim01)
            "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1,
                                                    "OPENBLAS_NUM_THREADS": 1},
        })
        try:
            if self.address is not None:
                self.client = Client(self.address, timeout="20s")
            else:
                n = self.requested or os.cpu_count() or 1
                self.local = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                          dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
                self.client = Client(self.local)
        except Exception as e:  # noqa: BLE001  OSError, TimeoutError, RuntimeError("Nanny failed to start"), ...
            self.close()
            if self.address is not None:
                raise EngineError(f"cannot reach the dask cluster at {self.address}: {type(e).__name__}: {e}") from None
            raise EngineError(f"cannot start a local dask cluster: {type(e).__name__}: {e}") from None
        self._check_workers()
        return self

    def _check_workers(self) -> None:
        from . import __version__

        try:
            info = self.client.run(_worker_info)
        except Exception as e:  # noqa: BLE001  e.g. ModuleNotFoundError while unpickling on a worker
            self.close()
            raise EngineError(f"the workers cannot run neurocodec ({type(e).__name__}: {e}); install neurocodec "
                              f"{__version__} where they run") from None
        if not info:
            self.close()
            raise EngineError(f"the cluster at {self.address} has no workers")
        other = sorted({v for v, _ in info.values()} - {__version__})
        if other:
            self.close()
            raise EngineError(f"the cluster's workers run neurocodec {', '.join(other)}, this is {__version__}")

    @property
    def workers(self) -> int:
        """Threads across the cluster's workers: how many files are coded at once."""
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, fn: Callable, data: bytes, *args: Any):
        """A future of `fn(data, *args)` on a worker. `data` travels in the task itself, not
        scattered to a worker beforehand: if a worker dies, its tasks can run elsewhere."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")  # files over 10 MB
            return self.client.submit(fn, data, *args, pure=False)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.local is not None:
            self.local.close()
            self.local = None

    def __exit__(self, *exc) -> None:
        self.close()


def is_killed_worker(e: BaseException) -> bool:
    return type(e).__name__ == "KilledWorker"
