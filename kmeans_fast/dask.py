"""Dask: exact k-means of chunked images (larger than memory) and batches on a cluster.

Needs the ``dask`` extra (``pip install "kmeans_fast[dask]"``: ``dask[array]``
and ``distributed``).

The colour histogram is mergeable: per-chunk (or per-file) counts add up
exactly, whatever the order or grouping.  So exact k-means over a chunked
image, or over many files, is

    map (chunk or file -> Histogram) -> tree sum -> fit_palette -> map (remap)

and the result is the same, bit for bit, as :func:`kmeans_fast.quantize` on
the whole image in memory.  Everything runs on Dask's own collections and
scheduler: the histograms are a :func:`dask.array.reduction` (a tree
reduction, ``split_every`` parts at a time), the labels a
:meth:`dask.array.Array.map_blocks`, and a batch of files is a
:class:`dask.bag.Bag` of histograms (tree sum) and one future per file.
Computations go to the active ``distributed.Client`` when there is one (Dask's
default), else to Dask's local scheduler.

:func:`quantize_dask`
    A chunked ``dask.array`` of pixels -> the palette (computed) and the labels
    (a lazy dask array with the image's row and column chunks).
:func:`write_png`
    Stream those labels into an indexed PNG, one row of chunks at a time
    (:class:`kmeans_fast.png.PngWriter`), so the labels are never whole in
    memory.
:func:`compress_files`
    The batch command's work on a Dask cluster: every file through
    :func:`kmeans_fast.pipeline.compress_file`, named as the command names
    them.

Dithering: Floyd-Steinberg carries each pixel's error to the next pixels of
the whole image, so it cannot run chunk by chunk, and :func:`quantize_dask`
refuses it; it refuses ``"ordered"`` too (see :func:`quantize_dask`).
:func:`compress_files` dithers as the command does (each file is in memory).
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate, islice
from pathlib import Path

import numpy as np

from . import api
from . import io as kio
from . import pipeline

__all__ = ["quantize_dask", "DaskQuantization", "histogram_dask", "label_bands", "write_png",
           "compress_files", "FileResult"]


def _dask_array():
    try:
        import dask.array as da
    except ImportError:
        raise ImportError("kmeans_fast.dask needs dask: pip install 'kmeans_fast[dask]'"
                          ) from None
    return da


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError("kmeans_fast.dask.compress_files needs distributed: "
                          "pip install 'kmeans_fast[dask]'") from None
    return distributed


def _active_client():
    """The ``distributed.Client`` Dask computes on now, or None (its local scheduler)."""
    import dask.base
    try:
        from distributed import Client
    except ImportError:
        return None
    owner = getattr(dask.base.get_scheduler(), "__self__", None)
    return owner if isinstance(owner, Client) else None


# --------------------------------------------------------------------------
# quantize a chunked array
# --------------------------------------------------------------------------
@dataclass
class DaskQuantization:
    """Result of :func:`quantize_dask`.

    Attributes
    ----------
    palette : ndarray of shape (k_out, C), dtype uint8
        As :attr:`kmeans_fast.Quantization.palette` (C = 1 for (H, W) input).
    labels : dask array of shape (H, W), dtype uint8 (k_out <= 256) or uint16
        Nearest palette entry of every pixel, lazy: the input's row and column
        chunks.  ``labels.compute()`` equals ``quantize(image, ...).labels``;
        :func:`write_png` streams it into a PNG without holding it whole.
    centers, inertia, sse, steps_run, converged, history, n_distinct, space,
    target_psnr, search
        As :class:`kmeans_fast.Quantization` (the k-means on the merged
        histogram: identical to :func:`kmeans_fast.quantize`'s).
    n_pixels : int
        H * W.
    method : str
        Always ``"histogram"``: the Lloyd steps ran over the distinct colours.
    dither : str
        Always ``"none"``.
    seconds : dict
        Wall time of the two computed stages: ``"histogram"`` (read every
        block, its histogram, the tree sum) and ``"fit"`` (the k-means).
    """

    palette: np.ndarray
    labels: object = field(repr=False)
    centers: np.ndarray
    inertia: int
    sse: int
    steps_run: int
    converged: bool
    history: list = field(default_factory=list)
    n_distinct: int = 0
    n_pixels: int = 0
    space: str = "rgb"
    target_psnr: float = None
    search: list = field(default_factory=list)
    method: str = "histogram"
    dither: str = "none"
    seconds: dict = field(default_factory=dict)

    @property
    def psnr(self):
        """PSNR in dB of the result (inf when exact)."""
        return api._psnr(self.sse, self.n_pixels * self.palette.shape[1])


def _check_array(array):
    """The array as a dask array with the channel axis in one chunk."""
    da = _dask_array()
    if not isinstance(array, da.Array):
        raise TypeError(f"array must be a dask array, not {type(array).__name__}: wrap an "
                        "image with dask.array.from_array(image, chunks=...), or use "
                        "kmeans_fast.quantize for an image in memory")
    if array.dtype != np.uint8:
        raise TypeError(f"array dtype {array.dtype} is not supported: convert it to uint8 "
                        "(array.astype('uint8'))")
    if array.ndim not in (2, 3):
        raise ValueError(f"array has shape {array.shape}: expected (H, W) or (H, W, C)")
    if any(np.isnan(n) for n in array.shape):
        raise ValueError(f"array has shape {array.shape} with unknown sizes: call "
                         "array.compute_chunk_sizes() first")
    if array.ndim == 3 and array.shape[2] not in (1, 3, 4):
        raise ValueError(f"array has {array.shape[2]} channels: expected 1, 3 or 4")
    if array.size == 0:
        raise ValueError(f"array of shape {array.shape} is empty")
    if array.ndim == 3 and len(array.chunks[2]) > 1:
        array = array.rechunk({2: -1})      # a pixel's channels in one block
    return array


def _check_dither(dither, dither_strength):
    api._check_choice("dither", dither, api.DITHERS)
    api._check_real("dither_strength", dither_strength, 0.0, 1.0)
    if dither == "fs":
        raise ValueError("dither='fs' (Floyd-Steinberg) passes each pixel's error on through "
                         "the whole image, so it cannot run chunk by chunk: use "
                         "dither='none', or kmeans_fast.quantize on an image in memory")
    if dither == "ordered":
        raise ValueError("dither='ordered' is not available in quantize_dask (it needs the "
                         "dither to take each chunk's offset and the whole image's error "
                         "scale): use dither='none', or kmeans_fast.quantize in memory")


def _use_threads(numba_threads):
    """Run this task's Numba kernels on ``numba_threads`` threads (None: as set).

    Numba's setting belongs to the calling thread, so each task sets it for
    the worker thread that runs it."""
    if numba_threads is not None:
        import numba
        numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))


def _one(value, ndim):
    """A (1,) * ndim object array holding value: one reduction part."""
    out = np.empty((1,) * ndim, dtype=object)
    out[(0,) * ndim] = value
    return out


def _block_histogram(block, axis=None, keepdims=None, numba_threads=None):
    """Reduction step 1: one block's Histogram (0 for an empty block)."""
    _use_threads(numba_threads)
    return _one(api.histogram(block) if block.size else 0, block.ndim)


def _sum_parts(parts):
    # Histogram + Histogram merges exact counts; 0 (an empty block) adds nothing
    return sum(parts.ravel().tolist(), 0)


def _combine_histograms(parts, axis=None, keepdims=None):
    """Reduction step 2 (each node of the tree): the sum of split_every parts."""
    return _one(_sum_parts(parts), parts.ndim)


def _total_histogram(parts, axis=None, keepdims=None):
    """Reduction step 3 (the root): the sum, in a 0-d object array."""
    out = np.empty((), dtype=object)
    out[()] = _sum_parts(parts)
    return out


def _split_every(split_every, numblocks):
    """split_every for dask.array.reduction, per axis: ``s`` parts per node of
    the tree spread over the row and column axes that have several blocks
    (Dask would spread an int over the channel axis too)."""
    if isinstance(split_every, dict):
        return split_every
    if split_every is None:
        import dask
        split_every = dask.config.get("split_every", None) or 16
    s = api._check_int("split_every", split_every, 2)
    per_axis = {axis: 2 for axis in range(len(numblocks))}
    several = [axis for axis in (0, 1) if numblocks[axis] > 1]
    if len(several) == 1:
        per_axis[several[0]] = s
    elif several:
        rows = max(2, math.isqrt(s))
        per_axis.update({0: rows, 1: max(2, s // rows)})
    return per_axis


def histogram_dask(array, *, split_every=None, numba_threads=None):
    """The colour histogram of a chunked image, lazily: a 0-d dask array
    holding a :class:`kmeans_fast.Histogram` (``.compute().item()``).

    One histogram per block, summed by a tree reduction
    (:func:`dask.array.reduction`) of ``split_every`` parts per node.
    ``split_every`` and ``numba_threads``: see :func:`quantize_dask`.
    """
    da = _dask_array()
    array = _check_array(array)
    if numba_threads is not None:
        numba_threads = api._check_int("numba_threads", numba_threads, 1)
    chunk = functools.partial(_block_histogram, numba_threads=numba_threads)
    return da.reduction(array, chunk, _total_histogram,
                        combine=_combine_histograms, axis=tuple(range(array.ndim)),
                        keepdims=False, dtype=object,
                        split_every=_split_every(split_every, array.numblocks),
                        concatenate=True, meta=np.empty((), dtype=object),
                        name="kmeans_fast-histogram")


def _remap_block(block, palette, space, numba_threads):
    """One block's labels: its pixels' nearest palette entries."""
    _use_threads(numba_threads)
    if block.size == 0:
        return np.empty(block.shape[:2], dtype=api._label_dtype(len(palette)))
    return api.remap(block, palette, space=space)


def quantize_dask(array, n_colors, *, steps=api.DEFAULT_STEPS, init="kmeans++", seed=None,
                  space="rgb", dither="none", dither_strength=1.0, tol=0.0, progress=None,
                  target_psnr=None, split_every=None, numba_threads=None):
    """Exact k-means quantization of a chunked image: :func:`kmeans_fast.quantize`
    on Dask.

    The histogram of every block is made where the block is, the histograms
    are summed by a tree reduction, the k-means runs here (in this process) on
    the sum, and the labels are a lazy map over the blocks.  The palette,
    labels and every error are identical (``==``) to those of
    ``quantize(array.compute(), n_colors, ...)`` with the same options, for
    any chunking.  The pixels are read twice: once now (the histogram), once
    when the labels are computed.

    Parameters
    ----------
    array : dask array of shape (H, W) or (H, W, C), dtype uint8
        C is 1, 3 or 4; any row and column chunks (a chunked channel axis is
        rechunked into one).
    n_colors : int
        Number of colours k, 1 to 65536.
    steps, init, seed, space, tol, progress, target_psnr
        As :func:`kmeans_fast.quantize`; ``progress`` is called in this process.
    dither : {"none"}, optional
        Only ``"none"``: ``"fs"`` (Floyd-Steinberg) is sequential over the whole
        image, and ``"ordered"`` is not available chunk by chunk; both raise
        ValueError.
    dither_strength : float, optional
        Accepted for symmetry with :func:`kmeans_fast.quantize`; unused.
    split_every : int or dict, optional
        Histograms summed per node of the reduction tree (at least 2 per axis
        of rows and columns with several blocks); a dict gives Dask's
        ``split_every`` per axis.  Default: Dask's ``split_every`` setting, or 16.
    numba_threads : int, optional
        Numba threads each block's task uses (None: the workers' setting, all
        their cores by default).  With several single-threaded workers per
        machine, ``cores // workers`` avoids oversubscribing the cores.

    Returns
    -------
    DaskQuantization
        ``palette`` and the fit computed; ``labels`` a dask array.

    Notes
    -----
    With Dask's threaded scheduler (no distributed client), several threads
    run the Numba kernels at once: that needs a thread-safe Numba threading
    layer (``omp`` or ``tbb``; ``workqueue`` is not).
    """
    array = _check_array(array)
    n_colors, steps, seed, tol = api._check_fit_args(n_colors, steps, init, seed, space, tol,
                                                     "numba", progress)
    target_psnr = api._check_target(target_psnr)
    _check_dither(dither, dither_strength)

    if numba_threads is not None:
        numba_threads = api._check_int("numba_threads", numba_threads, 1)
    started = time.perf_counter()
    total = histogram_dask(array, split_every=split_every,
                           numba_threads=numba_threads).compute().item()
    counted = time.perf_counter()
    fit = api.fit_palette(total, n_colors, steps=steps, init=init, seed=seed, space=space,
                          tol=tol, progress=progress, target_psnr=target_psnr)
    seconds = {"histogram": counted - started, "fit": time.perf_counter() - counted}
    palette = fit.palette
    drop = (2,) if array.ndim == 3 else ()
    labels = array.map_blocks(_remap_block, palette, space, numba_threads, drop_axis=drop,
                              dtype=api._label_dtype(len(palette)),
                              meta=np.empty((0, 0), dtype=api._label_dtype(len(palette))),
                              token="kmeans_fast-remap")
    return DaskQuantization(palette=palette, labels=labels, centers=fit.centers,
                            inertia=fit.inertia, sse=fit.sse, steps_run=fit.steps_run,
                            converged=fit.converged, history=fit.history,
                            n_distinct=fit.n_distinct, n_pixels=fit.n_pixels, space=space,
                            target_psnr=fit.target_psnr, search=fit.search, seconds=seconds)


# --------------------------------------------------------------------------
# labels -> PNG, a row of chunks at a time
# --------------------------------------------------------------------------
def label_bands(labels, *, ahead=2):
    """The rows of a 2-D dask array, as NumPy bands in order: one per row of chunks.

    With a distributed client, ``ahead`` bands are computing on the cluster
    while the caller handles the current one; otherwise each band is computed
    when it is needed (Dask's local scheduler).  At most ``ahead + 1`` bands
    are held here at once.

    Parameters
    ----------
    labels : dask array of shape (H, W)
        E.g. :attr:`DaskQuantization.labels`; rechunk its rows for other bands.
    ahead : int, optional
        Bands computed in advance (>= 0).

    Yields
    ------
    ndarray of shape (rows, W)
    """
    ahead = api._check_int("ahead", ahead, 0)
    if not isinstance(labels, _dask_array().Array):
        raise TypeError(f"labels must be a dask array, not {type(labels).__name__}: for labels "
                        "in memory use kmeans_fast.io.write_png")
    if labels.ndim != 2:
        raise ValueError(f"labels have shape {labels.shape}: expected (H, W)")
    ends = list(accumulate(labels.chunks[0]))
    bands = (labels[start:end] for start, end in zip([0] + ends[:-1], ends) if end > start)
    client = _active_client()
    if client is None:
        for band in bands:
            yield band.compute()
        return
    pending = deque(client.compute(band) for band in islice(bands, ahead + 1))
    while pending:
        future = pending.popleft()
        pending.extend(client.compute(band) for band in islice(bands, 1))
        band = future.result()
        future.release()
        yield band


def write_png(path, palette, labels, *, level=kio.PNG_LEVEL, ahead=2):
    """Write labels held as a dask array into a PNG, streaming, atomically.

    The labels are computed one row of chunks at a time (:func:`label_bands`)
    and fed to :class:`kmeans_fast.png.PngWriter`, so neither the labels nor
    the file are ever whole in memory.  The file is the same, byte for byte,
    as ``kmeans_fast.io.write_png(path, palette, labels.compute())``.  It is
    written to a temporary file in the same folder, which replaces ``path``
    only when complete.

    Parameters
    ----------
    path : str or os.PathLike
    palette : ndarray of shape (k, C), dtype uint8
    labels : dask array of shape (H, W), integer
    level : int, optional
        PNG compression level 0-9 (see :data:`kmeans_fast.png.LEVELS`).
    ahead : int, optional
        See :func:`label_bands`.

    Returns
    -------
    int
        The size of the file in bytes.
    """
    from .png import write_png_bands

    if not isinstance(labels, _dask_array().Array):
        raise TypeError(f"labels must be a dask array, not {type(labels).__name__}: for labels "
                        "in memory use kmeans_fast.io.write_png")
    if labels.ndim != 2:
        raise ValueError(f"labels have shape {labels.shape}: expected (H, W)")
    path = Path(path)
    height, width = labels.shape
    fd, temp = kio._create_temp(path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            size = write_png_bands(f, palette, height, width,
                                   label_bands(labels, ahead=ahead), level=level)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return size


# --------------------------------------------------------------------------
# a batch of files on a cluster
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class FileResult:
    """One file of :func:`compress_files`: its job, and its report or error.

    job : kmeans_fast.batch.Job
        The input and its output paths.
    report : dict or None
        The report (as ``kmeans-fast compress --json`` prints it), None when it
        failed.
    error : str or None
        The one-line message of a file that failed.
    """

    job: object
    report: dict = field(repr=False)
    error: str = None

    @property
    def ok(self):
        return self.error is None


def _error_text(error):
    if isinstance(error, MemoryError):
        return "not enough memory for this image"
    return str(error)


def _file_histogram(path, max_pixels, numba_threads):
    """(Histogram, None) of an image file, or (None, its one-line error)."""
    _use_threads(numba_threads)
    try:
        return api.histogram(kio.read_image(path, max_pixels=max_pixels)), None
    except (kio.ImageIOError, MemoryError) as e:
        return None, _error_text(e)


def _add_histograms(parts):
    """Bag reduction step: the sum of the readable files' histograms (0 if none)."""
    return sum((hist for hist, _ in parts if hist is not None), 0)


def _add_sums(sums):
    return sum(sums, 0)


def _shared_palette(total, options):
    """The batch command's shared palette: one fit to the summed histograms
    (None when no file could be read)."""
    if not isinstance(total, api.Histogram):
        return None
    from .batch import fit_shared
    return fit_shared(total, options).palette


def _compress(job, options, max_pixels, palette, numba_threads):
    """(report, None), or (None, one-line error) for a file that cannot be read
    or written (nothing is written then)."""
    _use_threads(numba_threads)
    try:
        return pipeline.compress_file(job.source, job.png, job.jpeg, options,
                                      max_pixels=max_pixels, palette=palette), None
    except (kio.ImageIOError, MemoryError) as e:
        return None, _error_text(e)


def _options(n_colors, options):
    names = set(pipeline.Options.__dataclass_fields__) - {"colors"}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"unknown option {unknown[0]!r}: compress_files takes "
                        f"{', '.join(sorted(names))}")
    result = pipeline.Options(colors=n_colors, **options)
    # the checks quantize makes on every file, made once before any work
    api._check_fit_args(result.colors, result.steps, result.init, result.seed, result.space,
                        0.0, "numba", None)
    api._check_choice("dither", result.dither, api.DITHERS)
    api._check_real("dither_strength", result.dither_strength, 0.0, 1.0)
    api._check_target(result.target_psnr)
    return result


def _local_cluster(workers):
    """A LocalCluster for a batch: worker processes with one task thread each."""
    # dashboard_address=":0": a free port (the scheduler's HTTP server would
    # otherwise take 8787, or warn when another cluster has it)
    return _distributed().LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, dashboard_address=":0")


def compress_files(paths, out_dir, n_colors=pipeline.DEFAULT_COLORS, *, client=None,
                   shared_palette=False, recursive=False, max_pixels="auto", workers=None,
                   numba_threads=None, **options):
    """Compress many image files on a Dask cluster, as ``kmeans-fast compress`` does.

    Each file goes through :func:`kmeans_fast.pipeline.compress_file` (the
    command's own pipeline) in a Dask task, and its outputs are named as the
    command names them for several images (:func:`kmeans_fast.batch.plan`):
    ``<out_dir>/<stem>_k<N>.png`` and ``<stem>_q<Q>.jpg``, so the files are
    byte for byte those of ``kmeans-fast compress PATHS... --out-dir OUT_DIR``.
    A file that cannot be read or written gets its one-line error and the
    others go on; nothing partial is ever written.

    Parameters
    ----------
    paths : str, os.PathLike or an iterable of them
        Image files, and folders of them (searched as the command does).
    out_dir : str or os.PathLike
        Where the outputs go (created if missing).
    n_colors : int, optional
        k (the most colours with ``target_psnr``).
    client : distributed.Client, optional
        The cluster to use.  None: a ``distributed.LocalCluster`` is started
        for this call and closed at its end (``workers`` processes, default one
        per core but no more than files, one task thread each); pass
        ``distributed.get_client()`` to use the active client.
    shared_palette : bool, optional
        One palette for all the files: each file's histogram is a task, the
        histograms are summed by a tree reduction (a ``dask.bag``), one k-means
        task fits the palette, and every file is mapped to it
        (``--shared-palette``).
    recursive : bool, optional
        Search the sub-folders of folders too (``--recursive``).
    max_pixels : "auto", int or None, optional
        See :func:`kmeans_fast.io.read_image`.
    workers : int, optional
        Worker processes of the LocalCluster started when ``client`` is None.
    numba_threads : int, optional
        Numba threads per task.  None: the workers' setting with ``client``;
        the cores shared out among the workers of the LocalCluster (as the
        batch command shares them among its processes).
    **options
        The fields of :class:`kmeans_fast.pipeline.Options` but ``colors``:
        ``steps``, ``init``, ``seed``, ``space``, ``dither``,
        ``dither_strength``, ``target_psnr``, ``png_level``, ``optimize``,
        ``jpeg``, ``jpeg_quality``, ``jpeg_match_size``, ``skip_if_larger``.

    Returns
    -------
    list of FileResult
        One per file, in the order of the plan (inputs as given, folders'
        files sorted).  Paths are absolute (in the jobs, reports and
        messages): the workers' current folder may not be this process's.

    Raises
    ------
    kmeans_fast.io.ImageIOError
        Before any work, as the command refuses to start: a missing input, a
        folder without images, two inputs with the same output, an output
        folder that cannot be made or written.
    TypeError, ValueError
        An unknown or invalid option.
    """
    from .batch import find_images, plan

    options = _options(n_colors, options)
    if numba_threads is not None:
        numba_threads = api._check_int("numba_threads", numba_threads, 1)
    if workers is not None:
        workers = api._check_int("workers", workers, 1)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    # absolute paths: the workers' current folder is not this process's
    paths = [Path(os.path.abspath(p)) for p in paths]
    jobs = plan(find_images(paths, recursive=recursive), Path(os.path.abspath(out_dir)),
                options)
    for folder in sorted({job.png.parent for job in jobs}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise kio.ImageIOError(f"cannot create folder '{folder}': {e.strerror or e}"
                                   ) from None
        kio.check_output(folder / ".kmeans-fast-probe.png")
    if not jobs:
        return []
    if client is not None:
        return _run_files(client, jobs, options, max_pixels, shared_palette, numba_threads)
    from .batch import default_workers
    workers = workers or default_workers(len(jobs))
    if numba_threads is None:
        numba_threads = max(1, (os.cpu_count() or 1) // workers)
    with _local_cluster(workers) as cluster, \
            _distributed().Client(cluster, set_as_default=False) as own:
        return _run_files(own, jobs, options, max_pixels, shared_palette, numba_threads)


def _run_files(client, jobs, options, max_pixels, shared_palette, numba_threads):
    import dask
    import dask.bag as db
    from distributed import KilledWorker

    errors = {}
    palette = None
    if shared_palette:
        hists = db.from_sequence([job.source for job in jobs], partition_size=1).map(
            _file_histogram, max_pixels, numba_threads)
        messages = hists.pluck(1)
        total = hists.reduction(_add_histograms, _add_sums, split_every=8)
        palette = dask.delayed(_shared_palette)(total, options)
        messages, palette = client.compute([messages, palette], sync=True)
        errors = {job: message for job, message in zip(jobs, messages) if message is not None}
        if palette is None:           # no file could be read
            return [FileResult(job, None, errors[job]) for job in jobs]
    todo = [job for job in jobs if job not in errors]
    futures = client.map(_compress, todo, options=options, max_pixels=max_pixels,
                         palette=palette, numba_threads=numba_threads, pure=False)
    done = {}
    try:
        for job, future in zip(todo, futures):
            try:
                done[job] = future.result()
            except KilledWorker:
                done[job] = (None, "the Dask worker compressing it died (out of memory?)")
    finally:                          # an unexpected error stops the rest of the batch
        client.cancel([f for f in futures if not f.done()])
    results = []
    for job in jobs:
        report, error = done.get(job, (None, errors.get(job)))
        results.append(FileResult(job, report, error))
    return results
