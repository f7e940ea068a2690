"""The methods the suite times, kmeans_fast's and its peers', behind one interface.

``prepare(image, k, steps, centres, seed)`` does the untimed set-up (type
conversions a user of that library must do too) and returns a zero-argument
``run``; ``run()`` is the timed call and returns an :class:`Outcome`.  Most
methods start from the shared centres and run ``steps`` Lloyd steps; the
``defaults`` ones (kmeans_fast's ``quantize(image, k)``, libimagequant at its
defaults) run what their users get, init and steps included.  Peers are
imported only inside their functions, so this module imports nothing beyond
NumPy and a missing peer shows up as "not installed".
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .images import shared_centres
from .measure import timed

WARMUP_SIDE = 128


@dataclass
class Outcome:
    """What one timed call produced."""

    quantized: Callable[[], np.ndarray]   # builds the (H, W, 3) uint8 result, untimed
    steps_run: int | None = None          # Lloyd steps the method reports, if any
    path: str | None = None               # kmeans_fast: the path that ran
    phases: dict | None = None            # kmeans_fast: seconds before, in, after the steps


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    requires: tuple
    init: str                             # how its initial centres are chosen
    prepare: Callable
    threads: Callable[[], object]
    backend: str | None = None            # kmeans_fast's backend; None for a peer
    max_k: int = 65536                    # most colours it can make
    defaults: bool = False                # its own defaults: own init and step count

    @property
    def peer(self):
        return self.backend is None

    def missing(self):
        """Names of required modules that are not installed."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


# --------------------------------------------------------------------------
# kmeans_fast
# --------------------------------------------------------------------------
def kf_init_args(centres, k, seed, kf_init):
    """``quantize`` keyword arguments for the initial centres.

    ``kf_init="shared"`` passes the suite's shared centres; ``"random"`` uses
    kmeans_fast's own seeded random init (k distinct colours of random pixels,
    like the shared centres).
    """
    if kf_init == "shared" and len(centres) == k:
        return dict(init=centres)
    return dict(init="random", seed=seed)  # (fewer colours than k: no centres needed)


class _Phases:
    """A ``progress`` callback for ``quantize`` that notes when the Lloyd steps
    start (``progress(0, steps)``, after the histogram and the init) and when
    each one ends: the seconds before, in and after the steps of one call."""

    def __init__(self):
        self.stamps = []
        self.start = time.perf_counter()

    def __call__(self, done, total):
        self.stamps.append(time.perf_counter())

    def split(self, end):
        if not self.stamps:
            return None
        first, last = self.stamps[0], self.stamps[-1]
        return dict(before_steps_s=first - self.start, steps_s=last - first,
                    after_steps_s=end - last)


def _kmeans_fast(backend, method, defaults=False):
    def prepare(image, k, steps, centres, seed, kf_init="random"):
        from kmeans_fast import quantize
        if defaults:   # quantize(image, k): k-means++, its steps (the command with --plain)
            args = dict(seed=seed)
        else:
            args = dict(steps=steps, method=method, tol=0.0,
                        **kf_init_args(centres, k, seed, kf_init))

        def run():
            phases = _Phases()
            q = quantize(image, k, backend=backend, progress=phases, **args)
            return Outcome(q.image, q.steps_run, q.method,
                           phases.split(time.perf_counter()))
        return run
    return prepare


def _numba_threads():
    import numba
    return numba.get_num_threads()


# --------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------
def _sklearn(image, k, steps, centres, seed, kf_init=None):
    from sklearn.cluster import KMeans
    x = image.reshape(-1, 3).astype(np.float32)  # float32: sklearn's faster path
    init = centres.astype(np.float32)

    def run():
        km = KMeans(n_clusters=init.shape[0], init=init, n_init=1, max_iter=steps,
                    tol=0.0, algorithm="lloyd", random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            km.fit(x)
        palette = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)
        return Outcome(lambda: palette[km.labels_].reshape(image.shape), int(km.n_iter_))
    return run


def _sklearn_threads():
    from threadpoolctl import threadpool_info
    import sklearn.cluster  # noqa: F401
    pools = [p["num_threads"] for p in threadpool_info()
             if p["user_api"] == "openmp" and "scikit_learn" in p["filepath"]]
    pools = pools or [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"]
    return max(pools) if pools else "?"


def _opencv(image, k, steps, centres, seed, kf_init=None):
    import cv2
    x = image.reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_MAX_ITER, steps, 0.0)

    def run():
        cv2.setRNGSeed(seed)
        _, labels, centers = cv2.kmeans(x, k, None, criteria, 1, cv2.KMEANS_RANDOM_CENTERS)
        palette = np.clip(np.rint(centers), 0, 255).astype(np.uint8)
        return Outcome(lambda: palette[labels.ravel()].reshape(image.shape))
    return run


def _opencv_threads():
    import cv2
    return cv2.getNumThreads()


def _imagequant_with(**options):
    def prepare(image, k, steps, centres, seed, kf_init=None):
        import imagequant
        h, w = image.shape[:2]
        rgba = np.empty((h, w, 4), dtype=np.uint8)
        rgba[:, :, :3] = image
        rgba[:, :, 3] = 255
        data = rgba.tobytes()
        del rgba

        def run():
            idx, pal = imagequant.quantize_raw_rgba_bytes(data, w, h, max_colors=k, **options)
            palette = np.asarray(pal, dtype=np.uint8).reshape(-1, 4)[:, :3]
            return Outcome(lambda: palette[np.frombuffer(idx, dtype=np.uint8)]
                           .reshape(image.shape))
        return run
    return prepare


def _pillow(image, k, steps, centres, seed, kf_init=None):
    from PIL import Image
    pil = Image.fromarray(image)

    def run():
        # kmeans=0 (Pillow's default): its `kmeans` argument is a stop threshold on
        # changed pixels, not an iteration count, so "10 steps" cannot be asked for.
        q = pil.quantize(colors=k, method=Image.Quantize.MEDIANCUT, kmeans=0,
                         dither=Image.Dither.NONE)
        return Outcome(lambda: np.asarray(q.convert("RGB")))
    return run


def _one_thread():
    return 1


# --------------------------------------------------------------------------
# the registry, in table order
# --------------------------------------------------------------------------
_KF_INIT = "the shared centres, or its own seeded init='random' (see --kf-init)"


def _kf(key, label, backend, method, threads):
    return Method(key, label, (), _KF_INIT, _kmeans_fast(backend, method),
                  threads, backend=backend)


METHODS = {m.key: m for m in (
    Method("numba-defaults", "kmeans_fast defaults (quantize(image, k); the command with --plain)", (),
           "its own: k-means++ (best of 3 greedy seedings on a coreset), up to 30 steps "
           "until converged; quantize(image, k, seed=seed)",
           _kmeans_fast("numba", "auto", defaults=True), _numba_threads, backend="numba",
           defaults=True),
    _kf("numba-auto", "kmeans_fast numba auto", "numba", "auto", _numba_threads),
    _kf("numba-pixels", "kmeans_fast numba pixels", "numba", "pixels", _numba_threads),
    _kf("numba-histogram", "kmeans_fast numba histogram", "numba", "histogram",
        _numba_threads),
    _kf("numpy-reference", "kmeans_fast NumPy reference (auto)", "numpy", "auto",
        _one_thread),
    Method("sklearn", "scikit-learn KMeans (lloyd, float32)", ("sklearn", "threadpoolctl"),
           "the shared centres (init=array, n_init=1, tol=0)", _sklearn, _sklearn_threads),
    Method("opencv", "OpenCV cv2.kmeans", ("cv2",),
           "cannot take centres: KMEANS_RANDOM_CENTERS, attempts=1, cv2.setRNGSeed(seed)",
           _opencv, _opencv_threads),
    Method("imagequant", "libimagequant (imagequant)", ("imagequant",),
           "its own (median cut + refinement); no centres, no step count; dithering off",
           _imagequant_with(dithering_level=0.0), _one_thread, max_k=256),
    Method("imagequant-defaults", "libimagequant defaults (dithering 1.0)", ("imagequant",),
           "its own defaults: quantize_raw_rgba_bytes(data, w, h, max_colors=k) "
           "(dithering_level 1.0, its default speed)",
           _imagequant_with(), _one_thread, max_k=256, defaults=True),
    Method("pillow", "Pillow quantize (median cut)", ("PIL",),
           "median cut; kmeans=0 (Pillow's `kmeans` is a change threshold, not a step "
           "count); dithering off", _pillow, _one_thread, max_k=256),
)}



def warm_up(method, image, k, steps, seed, kf_init):
    """(first call s, second call s) of ``method`` on a small crop of ``image``.

    For kmeans_fast both paths run, since "auto" may take either on the full
    image (and the defaults' k-means++ too); with Numba's on-disk cache warm,
    the difference is the cache load.
    """
    crop = np.ascontiguousarray(image[:WARMUP_SIDE, :WARMUP_SIDE])
    centres = shared_centres(crop, k, seed)
    if method.peer:
        runs = [method.prepare(crop, k, steps, centres, seed)]
    else:
        runs = [_kmeans_fast(method.backend, path)(crop, k, steps, centres, seed, kf_init)
                for path in ("pixels", "histogram")]
        if method.defaults:
            runs.append(method.prepare(crop, k, steps, centres, seed))
    first = sum(timed(run)[0] for run in runs)
    second = sum(timed(run)[0] for run in runs)
    return first, second
