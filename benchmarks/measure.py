"""Small measuring helpers shared by the worker and the end-to-end run."""

from __future__ import annotations

import importlib
import math
import time

import numpy as np

BAND_ROWS = 512


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
