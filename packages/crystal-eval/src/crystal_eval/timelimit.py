"""A per-crystal wall-clock limit (``SIGALRM`` timer) for work that can blow up on pathological cells.

Generated cells can be pathological: a cell with a 0.5 Å lattice vector and a few dozen atoms passes
CDVAE's structural validity (a site's distance to its own image is never checked) and makes CrystalNN
take seconds to minutes; StructureMatcher can take long on large or badly shaped cells. The limit is
enforced with a POSIX interval timer in the calling process (each worker process of
:func:`crystal_eval.parallel.pmap` runs its tasks in its main thread, so the limit works there too).

:class:`TimeLimitExceeded` derives from ``BaseException`` on purpose: pymatgen and matminer wrap much
of their work in ``except Exception`` (``structures_match`` does too), which would otherwise swallow
the interrupt and carry on. The timer interrupts Python code; a single long call into C (spglib,
qhull) is interrupted when it returns. Outside the main thread, or on a platform without
``signal.setitimer``, the limit is not enforced (the work runs to completion).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_TIME_LIMIT = 60.0  # seconds per crystal and per stage (CrystalNN fingerprint; StructureMatcher work)


class TimeLimitExceeded(BaseException):  # noqa: N818 (the name says what happened)
    """Raised inside a :func:`time_limit` block when its time is up."""


def limit_supported() -> bool:
    """True when :func:`time_limit` can enforce a limit here (POSIX timer, main thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _importing(frame) -> bool:
    """True while a module is being imported: interrupting then would leave it half-initialised."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _disarm(previous_handler: Any) -> None:
    """Stop the timer, drop an alarm of ours that is still pending, and give SIGALRM back to
    ``previous_handler``; the signal is blocked meanwhile, so that no alarm of ours reaches the previous
    handler (the default one ends the process)."""
    can_block = hasattr(signal, "pthread_sigmask") and hasattr(signal, "sigtimedwait")
    if can_block:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if can_block:
            signal.sigtimedwait({signal.SIGALRM}, 0)  # consumes a pending alarm, if any; returns at once
        signal.signal(signal.SIGALRM, previous_handler)
    finally:
        if can_block:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})


@contextmanager
def time_limit(seconds: float | None, what: str = "computation") -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` if the block runs longer than ``seconds`` (None or <= 0: no limit).

    The timer re-fires every ``max(0.05, seconds / 10)`` s until the block is left, because an interrupt
    is deferred while a module is being imported (a half-imported module would break every later call in
    the process) and Python drops an exception raised while a ``__del__`` or a weakref callback happens to
    run (the work would then go on); and a block that completes after a dropped or deferred interrupt still
    raises on exit. Nests: an enclosing limit that expires first still fires (the outer timer is restored
    on exit, minus the time inside).
    """
    if seconds is not None and seconds != seconds:  # NaN: neither a limit nor "none"
        raise ValueError("a time limit must be a number of seconds (or None / <= 0 for none), got NaN")
    if seconds is None or seconds <= 0 or not limit_supported():
        yield
        return
    message = f"{what} exceeded the time limit of {seconds:g} s"
    state = {"active": True}

    def _on_alarm(signum, frame):  # noqa: ARG001
        if state["active"] and not _importing(frame):
            raise TimeLimitExceeded(message)

    start = time.monotonic()
    outer_remaining, outer_interval = signal.setitimer(signal.ITIMER_REAL, 0)
    if outer_remaining and outer_remaining < seconds:  # the enclosing limit fires first: leave it alone
        signal.setitimer(signal.ITIMER_REAL, outer_remaining, outer_interval)
        yield
        return
    previous_handler = signal.signal(signal.SIGALRM, _on_alarm)
    try:  # armed inside the try: an alarm that fires at once (a tiny limit) still reaches the disarming below
        signal.setitimer(signal.ITIMER_REAL, seconds, max(0.05, seconds / 10))
        yield
    finally:
        state["active"] = False
        _disarm(previous_handler)
        if outer_remaining:
            left = max(1e-3, outer_remaining - (time.monotonic() - start))
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)
    if time.monotonic() - start >= seconds:  # an interrupt was deferred or dropped: still over time
        raise TimeLimitExceeded(message)
