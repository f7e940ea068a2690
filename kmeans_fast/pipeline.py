"""One run, start to end: quantize -> encode the PNG -> JPEG -> measure -> write.

:func:`compress_image` does the work on pixels in memory and returns the
encoded files and the report; :func:`compress_file` reads an image file, runs
it and writes the outputs atomically (both files or neither).  The command
(single file or batch), the Dask helpers and the benchmarks all call these,
so there is one pipeline and one report format.  Nothing here prints.

Data flows one way: pixels -> histogram -> k-means palette -> labels (nearest
entry or dithered) -> PNG bytes, measured from the palette and labels (no
painted copy of the quantized image); then pixels -> JPEG bytes -> decoded once
into one array -> measured; then the files are written.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import api
from . import io as kio
from .metrics import psnr, quality, size_stats, ssim

__all__ = ["Options", "Outcome", "compress_image", "run", "compress_file", "output_names",
           "json_ready", "DEFAULT_COLORS", "JPEG_OUTPUT"]

DEFAULT_COLORS = 16
JPEG_OUTPUT = "jpeg_compressed.jpg"


@dataclass(frozen=True)
class Options:
    """Everything that decides a run's output (the command's options).

    colors : int
        k, or the most colours allowed when ``target_psnr`` is set.
    steps, init, seed, space, dither, dither_strength
        As :func:`kmeans_fast.quantize`.
    target_psnr : float or None
        Use the fewest colours (<= ``colors``) whose undithered result reaches
        this PSNR (dB).
    png_level : int
        PNG compression level, 0-9.
    optimize : bool
        Run the lossless PNG optimizer (oxipng) too.
    jpeg : bool
        Make the comparison JPEG.
    jpeg_quality : int
        Its quality, 1-100; ignored with ``jpeg_match_size``.
    jpeg_match_size : bool
        Pick the JPEG quality whose size is closest to the PNG's.
    skip_if_larger : bool
        Write nothing when the PNG would be larger than the input file.
    """

    colors: int = DEFAULT_COLORS
    steps: int = api.DEFAULT_STEPS
    init: str = "kmeans++"
    seed: int = 0
    space: str = "oklab"           # the command's defaults (cli.DEFAULT_SPACE, _DITHER)
    dither: str = "fs"
    dither_strength: float = 1.0
    target_psnr: float = None
    png_level: int = kio.PNG_LEVEL
    optimize: bool = False
    jpeg: bool = True
    jpeg_quality: int = kio.JPEG_QUALITY
    jpeg_match_size: bool = False
    skip_if_larger: bool = False

    def quantize_args(self):
        return dict(steps=self.steps, init=self.init, seed=self.seed, space=self.space,
                    dither=self.dither, dither_strength=self.dither_strength,
                    target_psnr=self.target_psnr)


@dataclass
class Outcome:
    """What :func:`compress_image` made: the encoded files and the report.

    png, jpeg : bytes (jpeg None without the JPEG)
    report : dict
        ``{"kmeans": {...}, "jpeg": {...} or None}`` (see the README's report
        section); :func:`compress_file` adds ``"input"`` and the paths.
    exact : bool
        The PNG holds the pixels exactly (k >= the image's colours).
    """

    png: bytes
    jpeg: bytes
    report: dict
    exact: bool = False


def _quantize(pixels, options, palette, progress):
    """The quantization: k-means, or the given (shared) palette applied."""
    if palette is None:
        return api.quantize(pixels, options.colors, progress=progress,
                            **options.quantize_args())
    palette = np.asarray(palette, dtype=np.uint8)
    pixels = _widened(pixels, palette.shape[1])
    if options.dither != "none" and options.dither_strength > 0:
        from .dither import dither
        labels = dither(pixels, palette, method=options.dither,
                        strength=options.dither_strength, space=options.space)
    else:
        labels = api.remap(pixels, palette, space=options.space)
    return api.Quantization(palette=palette, labels=labels, centers=palette.astype(float),
                            inertia=0, sse=0, steps_run=0, converged=True, history=[],
                            method="shared palette", n_distinct=0, space=options.space,
                            dither=options.dither)


def _widened(pixels, n_channels):
    """Pixels in a (shared) palette's wider layout: gray as RGB, RGB as RGBA."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels == n_channels:
        return pixels
    from .colour import widen
    return widen(pixels.reshape(pixels.shape[:2] + (channels,)), n_channels)


def compress_image(pixels, options=Options(), *, palette=None, progress=None):
    """Quantize, encode and measure one image in memory.

    The stages run so that no more than two full-size images are alive at
    once: the PNG is made and measured (pixels + labels), the labels are let
    go, then the JPEG is made, decoded straight into one array and measured
    (pixels + decoded JPEG).

    Parameters
    ----------
    pixels : ndarray of shape (H, W) or (H, W, C), dtype uint8
        Gray, RGB or RGBA (as :func:`kmeans_fast.io.read_image` returns).
    options : Options
    palette : ndarray of shape (k, C), dtype uint8, optional
        A palette fitted beforehand (e.g. to several images): the pixels are
        only mapped to it (nearest entry, or dithered), no k-means runs.
    progress : callable or None
        Called with a short text for each stage (``progress("encoding the PNG")``).

    Returns
    -------
    Outcome
    """
    say = progress or (lambda message: None)
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    k = options.colors

    say(f"k-means, {k} colours")
    started = time.perf_counter()
    q = _quantize(pixels, options, palette,
                  lambda done, total: say(f"k-means, {k} colours, step {done}/{total}"))
    say("encoding the PNG")
    png = kio.png_bytes(q.palette, q.labels, level=options.png_level,
                        optimize=options.optimize)
    kmeans = {"bytes": len(png), "colors": len(q.palette),
              "distinct_colors": q.n_distinct, "bit_depth": kio.palette_bit_depth(len(q.palette)),
              "steps": options.steps, "steps_run": q.steps_run, "converged": q.converged,
              "space": options.space, "dither": options.dither,
              "dither_strength": options.dither_strength if options.dither != "none" else None,
              "target_psnr": options.target_psnr, "optimized": options.optimize,
              "shared_palette": palette is not None,
              "seconds": time.perf_counter() - started,
              **size_stats(len(png), height, width, channels)}
    if palette is not None:         # no k-means ran for this image: nothing to say about it
        kmeans.update(distinct_colors=None, steps_run=None, converged=None)
    if options.target_psnr is not None and palette is None:
        reached = q.psnr >= options.target_psnr
        kmeans.update(target_reached=bool(reached), undithered_psnr=q.psnr,
                      colors_tried=[k_ for k_, _ in q.search])
    say("measuring the PNG")
    kmeans.update(quality(_widened(pixels, q.palette.shape[1]), q.palette, q.labels)[0])
    exact = palette is None and q.n_distinct <= len(q.palette) and q.sse == 0
    del q                                   # the labels go before the JPEG comes

    report = {"kmeans": kmeans, "jpeg": None}
    jpeg = None
    if options.jpeg:
        say("encoding the JPEG")
        started = time.perf_counter()
        if options.jpeg_match_size:
            jpeg_quality, jpeg = kio.jpeg_for_size(pixels, len(png))
        else:
            jpeg_quality, jpeg = options.jpeg_quality, kio.encode_jpeg(pixels,
                                                                       options.jpeg_quality)
        report["jpeg"] = {"bytes": len(jpeg), "quality": jpeg_quality,
                          "seconds": time.perf_counter() - started,
                          **size_stats(len(jpeg), height, width, channels)}
        say("measuring the JPEG")
        decoded = kio.decode_jpeg_like(jpeg, pixels)
        # JPEG keeps no alpha: an RGBA image is compared on its colour channels
        reference = pixels[:, :, :3] if channels == 4 else pixels
        report["jpeg"].update(psnr=psnr(reference, decoded), ssim=ssim(reference, decoded))
        del decoded
    return Outcome(png=png, jpeg=jpeg, report=report, exact=exact)


def output_names(stem, options, *, batch):
    """Default output file names: (png, jpeg).

    One input keeps the original names (``<stem>_k<N>.png`` and
    ``jpeg_compressed.jpg``); in a batch each JPEG is named after its input
    (``<stem>_q<Q>.jpg``, ``<stem>_qmatch.jpg`` with ``jpeg_match_size``)."""
    png = f"{stem}_k{options.colors}.png"
    if not batch:
        return png, JPEG_OUTPUT
    return png, f"{stem}_q{'match' if options.jpeg_match_size else options.jpeg_quality}.jpg"


def _input_report(path, pixels, n_bytes, seconds, sample=False):
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return {"path": None if path is None else str(path), "sample": sample,
            "width": width, "height": height, "channels": channels, "bytes": n_bytes,
            "raw_bytes": pixels.nbytes, "seconds": seconds,
            **size_stats(n_bytes, height, width, channels)}


def run(pixels, png_path, jpeg_path, options=Options(), *, source=None, source_bytes=None,
        read_seconds=0.0, palette=None, progress=None, write=None):
    """Compress pixels and write the outputs: the whole job for one image.

    Parameters
    ----------
    pixels : ndarray
        The image (see :func:`compress_image`).
    png_path, jpeg_path : path, or None for the JPEG when ``options.jpeg`` is off
        Where the files go.  A path may be any object ``write`` accepts.
    source : path or None
        The input file (None for pixels from elsewhere: the built-in sample).
    source_bytes : int
        The input's size; the raw pixel size when None.
    write : callable, optional
        ``write({path: bytes})``; :func:`kmeans_fast.io.write_files` (atomic,
        all or nothing) by default.

    Returns
    -------
    dict
        The report: ``input``, ``kmeans`` and ``jpeg`` parts, and ``skipped``
        (None, or why nothing was written).
    """
    say = progress or (lambda message: None)
    outcome = compress_image(pixels, options, palette=palette, progress=progress)
    report = {"input": _input_report(source, pixels,
                                     pixels.nbytes if source_bytes is None else source_bytes,
                                     read_seconds, sample=source is None), **outcome.report}
    kept = _kept_input(source, outcome)
    if kept is not None:       # the input already holds exactly this result, in fewer bytes
        outcome.png = kept
        report["kmeans"].update(bytes=len(kept), kept_input=True,
                                **size_stats(len(kept), *pixels.shape[:2],
                                             report["input"]["channels"]))
    report["kmeans"]["path"] = str(png_path)
    if report["jpeg"] is not None:
        report["jpeg"]["path"] = str(jpeg_path)
    report["skipped"] = None
    if options.skip_if_larger and len(outcome.png) > report["input"]["bytes"]:
        report["skipped"] = (f"the PNG ({len(outcome.png):,} bytes) would be larger than "
                             f"the input ({report['input']['bytes']:,} bytes)")
        for part in (report["kmeans"], report["jpeg"]):
            if part is not None:
                part["path"] = None             # no file is there
        return report
    files = {png_path: outcome.png}
    if outcome.jpeg is not None:
        files[jpeg_path] = outcome.jpeg
    say("writing")
    (write or kio.write_files)(files)
    return report


def _kept_input(source, outcome):
    """The input file's bytes, when it is an 8-bit PNG that already has every
    colour of the result (k >= its colours, nothing changed) and is smaller
    than our encoding: copying it is exact and smaller.  Else None."""
    if source is None or not outcome.exact:
        return None
    try:
        data = Path(source).read_bytes()
    except OSError:
        return None
    if (data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or data[24] > 8
            or len(data) >= len(outcome.png)):
        return None
    return data


def compress_file(path, png_path, jpeg_path, options=Options(), *, max_pixels="auto",
                  palette=None, progress=None):
    """Read an image file, compress it, write the outputs; the report.

    ``jpeg_path`` is ignored (may be None) when ``options.jpeg`` is off.
    Raises :class:`kmeans_fast.io.ImageIOError` for a file that cannot be read
    or written (nothing is written then).
    """
    path = Path(path)
    started = time.perf_counter()
    pixels = kio.read_image(path, max_pixels=max_pixels)
    seconds = time.perf_counter() - started
    return run(pixels, png_path, jpeg_path if options.jpeg else None, options, source=path,
               source_bytes=path.stat().st_size, read_seconds=seconds, palette=palette,
               progress=progress)


def json_ready(value):
    """A report as JSON takes it: infinite PSNRs as None (JSON has no
    infinity), paths as text."""
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
