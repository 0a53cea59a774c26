"""Where independent tasks run: this process, local worker processes, or a Dask cluster.

All three are `concurrent.futures`-style executors (`submit` -> future), so the run code is
the same for each. Workers use one torch thread each (two multi-threaded torch processes on
two cores spin-wait each other), and tasks seed themselves, so results equal a serial run.

    local, workers=1      serial, in this process
    local, workers=N      N spawned worker processes
    dask://HOST:PORT      the workers of a running Dask scheduler (`dask scheduler`,
                          `dask worker tcp://HOST:PORT --nthreads 1`)
"""
from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor

from emotionnas.errors import ConfigError


class SerialExecutor:
    """Runs each task at `submit`, in this process (the reference the others must equal)."""

    def submit(self, fn, *args, **kwargs) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
            f.set_exception(e)
        return f

    def shutdown(self, wait: bool = True) -> None:
        pass


def _init_worker(parent: int) -> None:
    """One torch thread; and exit when the run that started this worker is gone (a run killed
    with SIGKILL must not leave workers training for nobody)."""
    import threading
    import time

    import torch
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


class DaskExecutor:
    """A Dask `Client`'s executor; closing it closes the client, not the cluster. Its workers may
    run on other machines: they write nothing into the run folder (only the process holding the
    folder's lock does), so their tasks keep any scratch files (a cell search's checkpoints) in
    a temporary folder of their own."""
    remote = True

    def __init__(self, address: str):
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError("executor dask://...: the dask and distributed packages are not installed "
                              "(pip install 'emotionnas[dask]')") from None
        try:
            self.client = Client(address, timeout=10)
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"executor dask://{address}: cannot reach the scheduler ({e})") from None
        self._ex = self.client.get_executor(pure=False)

    def submit(self, fn, *args, **kwargs):
        return self._ex.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True) -> None:
        self._ex.shutdown(wait=wait)
        self.client.close()


def make_executor(spec: str = "local", workers: int = 1):
    if spec.startswith("dask://"):
        return DaskExecutor(spec[len("dask://"):])
    if spec != "local":
        raise ConfigError(f"executor: expected 'local' or 'dask://HOST:PORT', got {spec!r}")
    if workers <= 1:
        return SerialExecutor()
    import multiprocessing as mp
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(os.getpid(),))
