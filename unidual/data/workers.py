"""The one way to start worker processes that decode or encode media (``data check``, ``data prepare``).

``spawn``, not ``fork``: a forked child of a process that already ran FFmpeg's threads (swscale's
slice threads, a threaded decoder; in a notebook, a test, a pipeline) can deadlock in them, as
Python 3.12+ with PyAV 19 does. The workers ignore Ctrl-C from birth (even while importing), so an
interrupt reaches only the main process, which ends them and reports in one line.

As with any ``spawn`` pool (and torch's DataLoader with ``spawn``), a *script* that calls
``prepare_dataset`` or ``check_dataset`` with ``workers > 1`` needs the ``if __name__ == "__main__":``
guard, since each worker imports the script's main module; notebooks and the ``unidual`` command need nothing.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from multiprocessing.pool import Pool


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def media_pool(size: int) -> Pool:
    """A ``spawn`` pool of ``size`` processes whose workers leave SIGINT to the main process."""
    context = multiprocessing.get_context("spawn")
    if threading.current_thread() is not threading.main_thread():  # signal handlers: main thread only
        return context.Pool(size, initializer=_ignore_interrupts)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through exec: ignored from birth
    try:
        return context.Pool(size, initializer=_ignore_interrupts)
    finally:
        signal.signal(signal.SIGINT, previous)
