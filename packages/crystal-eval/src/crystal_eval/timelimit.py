"""A per-crystal time limit (a POSIX interval timer) for work that can blow up on pathological cells.

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

Two clocks: ``"wall"`` (default; ``ITIMER_REAL`` / ``SIGALRM``) counts elapsed time, so on a loaded machine
the same work runs into the limit sooner; ``"cpu"`` (``ITIMER_PROF`` / ``SIGPROF``) counts the CPU time of
the process (user and system, all its threads), which other processes do not consume, so the same work on
the same machine gets the same verdict however busy the machine is. All threads count: a BLAS pool whose
threads spin between calls would use up the limit while waiting, so run CPU-limited work with one BLAS thread
(``threadpoolctl.threadpool_limits(1)``, as crystal-eval's workers and relaxations do).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_TIME_LIMIT = 60.0  # seconds per crystal and per stage (CrystalNN fingerprint; StructureMatcher work)

CLOCKS = ("wall", "cpu")
"""The clocks a limit can count: elapsed time, or the process's CPU time."""


def clock_function(clock: str) -> Any:
    """The reading of ``clock`` in seconds: ``time.perf_counter`` (wall) or ``time.process_time`` (cpu)."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    return time.perf_counter if clock == "wall" else time.process_time


_QUIET = [0]
"""Above 0 while a limit is being set up or torn down: an alarm then is deferred (see :func:`time_limit`)."""
_DEFERRED: list[tuple[dict[str, bool], str]] = []
"""Alarms that arrived during set-up or tear-down: (the limit's state, its message), raised once that is over."""


def _raise_deferred() -> None:
    """Raise the first deferred alarm whose limit is still active (at a point where nothing is half set up)."""
    pending = [(state, message) for state, message in _DEFERRED if state["active"]]
    _DEFERRED.clear()
    if pending:
        raise TimeLimitExceeded(pending[0][1])


def limit_message(what: str, seconds: float, clock: str = "wall") -> str:
    """The message of a :class:`TimeLimitExceeded` of ``what`` after ``seconds`` of ``clock``."""
    return f"{what} exceeded the time limit of {seconds:g} s" + (" of CPU time" if clock == "cpu" else "")


def _timer(clock: str) -> tuple[int, Any]:
    """The interval timer of ``clock`` and the signal it sends."""
    return (signal.ITIMER_REAL, signal.SIGALRM) if clock == "wall" else (signal.ITIMER_PROF, signal.SIGPROF)


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


def _disarm(previous_handler: Any, clock: str = "wall") -> None:
    """Stop the timer, drop an alarm of ours that is still pending, and give the signal back to
    ``previous_handler``; the signal is blocked meanwhile, so that no alarm of ours reaches the previous
    handler (the default one ends the process)."""
    which, signum = _timer(clock)
    can_block = hasattr(signal, "pthread_sigmask") and hasattr(signal, "sigtimedwait")
    if can_block:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
    try:
        signal.setitimer(which, 0)
        if can_block:
            signal.sigtimedwait({signum}, 0)  # consumes a pending alarm, if any; returns at once
        signal.signal(signum, previous_handler)
    finally:
        if can_block:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})


@contextmanager
def time_limit(seconds: float | None, what: str = "computation", clock: str = "wall") -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` if the block runs longer than ``seconds`` (None or <= 0: no limit) of
    ``clock``: ``"wall"`` (elapsed) or ``"cpu"`` (the process's CPU time; see the module docstring).

    The timer re-fires every ``max(0.05, seconds / 10)`` s until the block is left, because an interrupt
    is deferred while a module is being imported (a half-imported module would break every later call in
    the process) and Python drops an exception raised while a ``__del__`` or a weakref callback happens to
    run (the work would then go on); and a block that completes after a dropped or deferred interrupt still
    raises on exit. Nests: an enclosing limit of the same clock that expires first still fires (the outer
    timer is restored on exit, minus the time inside); limits of the two clocks use separate timers.
    """
    if seconds is not None and seconds != seconds:  # NaN: neither a limit nor "none"
        raise ValueError("a time limit must be a number of seconds (or None / <= 0 for none), got NaN")
    now = clock_function(clock)
    if seconds is None or seconds <= 0 or not limit_supported():
        yield
        return
    which, signum = _timer(clock)
    message = limit_message(what, seconds, clock)
    state = {"active": True}

    def _on_alarm(signum, frame):  # noqa: ARG001
        if not state["active"] or _importing(frame):
            return
        if _QUIET[0]:
            _DEFERRED.append((state, message))
            return
        raise TimeLimitExceeded(message)

    # Set-up and tear-down run quiet: an alarm of any limit (the other clock's, or an enclosing one) that arrives
    # meanwhile, e.g. run by pthread_sigmask, is deferred instead of raising there and leaving a timer or handler
    # behind; it is raised as soon as the set-up or tear-down is complete.
    _QUIET[0] += 1
    try:
        start = now()
        outer_remaining, outer_interval = signal.setitimer(which, 0)
        outer_first = bool(outer_remaining) and outer_remaining < seconds
        if outer_first:  # the enclosing limit fires first: leave it alone
            signal.setitimer(which, outer_remaining, outer_interval)
        else:
            previous_handler = signal.signal(signum, _on_alarm)
            signal.setitimer(which, seconds, max(0.05, seconds / 10))
    finally:
        _QUIET[0] -= 1
    if outer_first:
        _raise_deferred()
        yield
        return
    try:
        _raise_deferred()
        yield
    finally:
        _QUIET[0] += 1
        try:
            state["active"] = False
            _disarm(previous_handler, clock)
            if outer_remaining:
                left = max(1e-3, outer_remaining - (now() - start))
                signal.setitimer(which, left, outer_interval)
        finally:
            _QUIET[0] -= 1
    _raise_deferred()
    if now() - start >= seconds:  # an interrupt was deferred or dropped: still over time
        raise TimeLimitExceeded(message)
