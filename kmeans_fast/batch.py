"""Many images at once: the inputs, where their outputs go, and a pool of
worker processes that runs :func:`kmeans_fast.pipeline.compress_file` on each.

Files run in parallel across processes (one file per process at a time, the
Numba threads shared out among them), which beats parallel kernels on small
photos; a batch of one file runs in the calling process with every thread.
With a shared palette, each file's colour histogram is made in the workers,
the histograms are added up (exactly: counts add), one k-means palette is
fitted to the sum, and every file is then mapped to it.

Nothing here prints: results come back one by one to a callback, in the
order the files finish.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from . import io as kio
from . import pipeline

__all__ = ["Job", "find_images", "plan", "run_batch", "fit_shared", "IMAGE_SUFFIXES"]

# What a folder is searched for (OpenCV reads these).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".webp", ".bmp", ".dib",
                  ".ppm", ".pgm", ".pbm", ".pnm", ".pxm", ".sr", ".ras", ".jp2", ".exr",
                  ".hdr", ".pic", ".avif", ".gif")


@dataclass(frozen=True)
class Job:
    """One input and where its outputs go (jpeg None without the JPEG)."""

    source: Path
    png: Path
    jpeg: Path


def find_images(inputs, *, recursive=False):
    """The image files named by ``inputs``: files as given, folders searched.

    Returns a list of (path, relative folder) pairs: the folder a file's
    outputs go to below the output folder (its folder below the searched one,
    with ``recursive``; the output folder itself otherwise).  Raises
    :class:`kmeans_fast.io.ImageIOError` for a missing input, a folder without
    images, or a folder given without ``recursive`` whose images are in
    sub-folders only.
    """
    found = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in item.glob(pattern)
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                deeper = (not recursive and any(p.suffix.lower() in IMAGE_SUFFIXES
                                                for p in item.glob("**/*") if p.is_file()))
                hint = " (its sub-folders have some: add --recursive)" if deeper else ""
                raise kio.ImageIOError(f"folder '{item}' has no images{hint}")
            found.extend((p, p.parent.relative_to(item)) for p in files)
        elif item.exists():
            found.append((item, Path()))
        else:
            raise kio.ImageIOError(f"'{item}' does not exist: check the path")
    return found


def plan(found, out_dir, options):
    """Jobs for (path, relative folder) pairs: outputs named after each input
    (:func:`kmeans_fast.pipeline.output_names`) in ``out_dir``/relative folder.

    Raises :class:`kmeans_fast.io.ImageIOError` when two inputs would write the
    same output, or an output would replace an input.
    """
    out_dir = Path(out_dir)
    jobs, seen = [], {}
    sources = {os.path.realpath(p) for p, _ in found}
    for path, rel in found:
        png_name, jpeg_name = pipeline.output_names(path.stem, options, batch=True)
        folder = out_dir / rel
        job = Job(path, folder / png_name, folder / jpeg_name if options.jpeg else None)
        for out in (job.png, job.jpeg):
            if out is None:
                continue
            key = os.path.realpath(out)
            if key in seen:
                raise kio.ImageIOError(f"'{seen[key]}' and '{path}' would both write '{out}': "
                                       "rename one, or give their folder with --recursive")
            if key in sources:
                raise kio.ImageIOError(f"the output '{out}' would replace the input '{out}': "
                                       "choose another --out-dir")
            seen[key] = path
        jobs.append(job)
    return jobs


# --------------------------------------------------------------------------
# the workers
# --------------------------------------------------------------------------
def _init_worker(threads):
    # the parent stops the batch on Ctrl-C and ends the workers with SIGTERM,
    # which kmeans_fast.io turns into a clean exit while it writes
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kio.return_freed_memory()   # as the command does (a spawned process starts anew)
    from ._jit import skip_blas_probe
    skip_blas_probe()
    import numba
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _compress(job, options, max_pixels, palette):
    return pipeline.compress_file(job.source, job.png, job.jpeg, options,
                                  max_pixels=max_pixels, palette=palette)


def _histogram(path, max_pixels):
    from .api import histogram
    return histogram(kio.read_image(path, max_pixels=max_pixels))


def fit_shared(total, options):
    """The shared palette of a batch: k-means on the sum of its images'
    histograms (gray, RGB and RGBA images meet in the widest layout), with
    the batch's options."""
    from .api import fit_palette
    q = options.quantize_args()
    return fit_palette(total, options.colors, steps=q["steps"], init=q["init"], seed=q["seed"],
                       space=q["space"], target_psnr=q["target_psnr"])


def _outcome(future):
    """(report, None) or (None, one-line error) of a finished job."""
    try:
        return future.result(), None
    except (kio.ImageIOError, MemoryError) as e:
        return None, (str(e) if not isinstance(e, MemoryError)
                      else "not enough memory for this image")


def default_workers(n_files):
    """Processes for a batch: one per core, no more than files (one: in-process)."""
    return max(1, min(os.cpu_count() or 1, n_files))


class _Done:
    """A finished call, shaped like a future."""

    def __init__(self, fn, *args):
        try:
            self.value, self.error = fn(*args), None
        except Exception as e:          # noqa: BLE001  (re-raised by result())
            self.value, self.error = None, e

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


class _Pool:
    """Worker processes; or, for one worker, the calling process itself (all
    the threads on one image at a time, no start-up cost)."""

    def __init__(self, workers):
        self.executor = None
        if workers > 1:
            import numba
            threads = numba.config.NUMBA_NUM_THREADS
            self.executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=get_context("spawn"),
                initializer=_init_worker, initargs=(max(1, threads // workers),))

    def map(self, fn, items, args):
        if self.executor is None:
            for item in items:
                yield item, _Done(fn, item, *args)
            return
        futures = {self.executor.submit(fn, item, *args): item for item in items}
        for future in as_completed(futures):
            yield futures[future], future

    def shutdown(self, cancel=False):
        if self.executor is None:
            return
        if cancel:
            for proc in list(getattr(self.executor, "_processes", {}).values()):
                if proc.is_alive():
                    proc.terminate()
        self.executor.shutdown(wait=True, cancel_futures=cancel)


def run_batch(jobs, options, *, workers=None, max_pixels="auto", shared_palette=False,
              on_result=None, on_stage=None):
    """Run ``jobs``; call ``on_result(job, report, error)`` as each finishes.

    Parameters
    ----------
    jobs : list of Job
    options : kmeans_fast.pipeline.Options
    workers : int, optional
        Worker processes; :func:`default_workers` by default.
    max_pixels : see :func:`kmeans_fast.io.read_image`
    shared_palette : bool
        Fit one palette to all the images together (their merged histogram),
        then map every image to it.
    on_result : callable
        ``on_result(job, report, error)``: the report (dict) or, for a file
        that failed, None and a one-line message.  The batch goes on.
    on_stage : callable, optional
        ``on_stage(text)`` when a batch-wide stage starts (the shared palette).

    Returns
    -------
    dict or None
        With ``shared_palette``: ``{"colors", "psnr", "images", "seconds"}`` of the
        fitted palette (None when no image could be read).
    """
    import time

    on_result = on_result or (lambda job, report, error: None)
    on_stage = on_stage or (lambda text: None)
    workers = workers or default_workers(len(jobs))
    pool = _Pool(workers)
    cancelled = True
    try:
        palette, shared = None, None
        if shared_palette:
            on_stage(f"colour histograms of {len(jobs)} images")
            started = time.perf_counter()
            hists, readable = [], []
            for job, future in pool.map(_histogram, [j.source for j in jobs], (max_pixels,)):
                hist, error = _outcome(future)
                if error is None:
                    hists.append(hist)
                    readable.append(job)
                else:
                    on_result(next(j for j in jobs if j.source == job), None, error)
            if not hists:
                cancelled = False
                return None
            on_stage(f"one palette for {len(hists)} images")
            fit = fit_shared(sum(hists), options)
            palette = fit.palette
            shared = {"colors": len(palette), "psnr": fit.psnr, "images": len(hists),
                      "seconds": time.perf_counter() - started}
            jobs = [j for j in jobs if j.source in set(readable)]
        for job, future in pool.map(_compress, jobs, (options, max_pixels, palette)):
            report, error = _outcome(future)
            on_result(job, report, error)
        cancelled = False
        return shared
    finally:
        pool.shutdown(cancel=cancelled)
