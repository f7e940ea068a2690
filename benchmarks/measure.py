"""Small measuring helpers shared by the worker, the end-to-end run and the
command timings: timed calls, timed child processes (wall time and peak RSS),
and a busy loop in a second process."""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

BAND_ROWS = 512
# The other process of the busy-core measurement: one core kept busy.
BUSY_LOOP = (sys.executable, "-c", "while 1: pass")
BUSY_SETTLE_S = 0.3        # let the busy loop start before timing


def timed(fn, *args, **kwargs):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def package_function(module, *names):
    """The first of ``names`` found in ``module`` (e.g. a kmeans_fast module still
    being written), or None when the module or all of the names are missing."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    for name in names:
        fn = getattr(mod, name, None)
        if callable(fn):
            return fn
    return None


def _numpy_psnr(original, quantized):
    """PSNR in dB over all channels, computed band by band (no full float copy)."""
    sq = 0
    for y0 in range(0, original.shape[0], BAND_ROWS):
        a = original[y0:y0 + BAND_ROWS].astype(np.int32)
        a -= quantized[y0:y0 + BAND_ROWS]
        a *= a
        sq += int(a.sum(dtype=np.int64))
    mse = sq / original.size
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def psnr(original, quantized):
    """(dB, provider): kmeans_fast.metrics.psnr when present, else plain NumPy."""
    fn = package_function("kmeans_fast.metrics", "psnr")
    if fn is not None:
        try:
            return float(fn(original, quantized)), "kmeans_fast.metrics.psnr"
        except (TypeError, ValueError):
            pass
    return _numpy_psnr(original, quantized), "numpy"


@contextlib.contextmanager
def busy_loop(settle_s=BUSY_SETTLE_S):
    """A second process spinning on one core for the duration of the block."""
    proc = subprocess.Popen(BUSY_LOOP, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle_s)
        yield proc
    finally:
        proc.kill()
        proc.wait()


TIME_PROGRAM = "/usr/bin/time"   # GNU time: measures its child's peak RSS


def run_process(cmd, *, env=None, cwd=None, timeout_s=600.0):
    """Run ``cmd`` to the end: a dict of its wall seconds, peak RSS and exit status.

    The peak RSS is what ``/usr/bin/time`` reports as "Maximum resident set size"
    (``%M``): the ``ru_maxrss`` that ``wait4`` gives for a child that the small
    ``time`` program forked.  (Read straight from this process's ``wait4``, it
    would include this process's own size: Linux hands a child the peak of the
    memory it was started from.)  Without ``/usr/bin/time``, ``wait4`` is used
    and ``rss_from`` says so.  Standard output is dropped; the last line of
    standard error comes back as ``error`` on failure.
    """
    use_time = os.access(TIME_PROGRAM, os.X_OK)
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss_file:
        full = [TIME_PROGRAM, "-q", "-f", "%M %e", "-o", rss_file.name, *cmd] if use_time \
            else list(cmd)
        started = time.perf_counter()
        proc = subprocess.Popen(full, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        scale = 1 if sys.platform == "darwin" else 1024
        peak = usage.ru_maxrss * scale
        if use_time:
            fields = rss_file.read().split()
            peak = int(fields[0]) * 1024 if fields and fields[0].isdigit() else None
        out = dict(seconds=seconds, peak_rss_bytes=peak,
                   cpu_s=usage.ru_utime + usage.ru_stime, returncode=proc.returncode,
                   rss_from="/usr/bin/time %M" if use_time else "wait4 (includes the parent)")
        if proc.returncode != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            out["error"] = (f"exit {proc.returncode}: "
                            + (lines[-1] if lines else "no message")
                            + (f" (killed after {timeout_s:.0f} s)" if seconds >= timeout_s
                               else ""))
        return out
