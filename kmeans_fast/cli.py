"""The ``kmeans-fast`` command.

Click only: parse the command line, ask for what is missing, call the library
(:mod:`kmeans_fast.io`, :func:`kmeans_fast.quantize`, :mod:`kmeans_fast.metrics`,
:mod:`kmeans_fast.sample`) and print the report.  Library errors become one
line on stderr and a non-zero exit: 2 for a bad command line or input file
(``click.UsageError``), 1 for a failure while working (``click.ClickException``).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path

import click

from . import __version__
from . import io as kio
from .api import DEFAULT_STEPS, INITS, MAX_COLORS, quantize
from .metrics import psnr, size_stats, ssim
from .sample import sample_image

__all__ = ["main"]

DEFAULT_COLORS = 16
JPEG_OUTPUT = "jpeg_compressed.jpg"
_PROGRESS_PIXELS = 500_000       # from about this size on, a run takes over a second


def _stdin_is_terminal():
    return sys.stdin is not None and sys.stdin.isatty()


def _stderr_is_terminal():
    return sys.stderr is not None and sys.stderr.isatty()


@contextlib.contextmanager
def _one_line_errors():
    """Turn click's usage errors into one line: the message and where help is.

    Click prints a usage block before a usage error; the issue asks for one
    line on stderr.  Errors with their own display (help on no arguments) pass.
    """
    try:
        yield
    except click.UsageError as e:
        if e.ctx is None or type(e).show is not click.UsageError.show:
            raise
        hint = f" (see '{e.ctx.command_path} --help')"
        raise click.UsageError(e.format_message().rstrip(".") + hint) from None


class _Group(click.Group):
    """A click group whose usage errors, its commands' included, print as one line."""

    def make_context(self, *args, **kwargs):
        with _one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_errors():
            return super().invoke(ctx)


@click.group("kmeans-fast", cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kmeans-fast")
def main():
    """Compress images by exact, deterministic k-means colour quantization."""


class _Progress:
    """Stage messages on one rewritten stderr line, shown only when asked for."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.width = 0

    def __call__(self, message):
        if self.enabled:
            text = f"kmeans-fast: {message}..."
            click.echo("\r" + text.ljust(self.width), nl=False, err=True)
            self.width = len(text)

    def done(self):
        if self.enabled and self.width:
            click.echo("\r" + " " * self.width + "\r", nl=False, err=True)
            self.width = 0


def _bad(param_hint, error):
    return click.BadParameter(str(error), param_hint=param_hint)


def _ask(value, prompt, default, value_type, interactive):
    if value is not None:
        return value
    if interactive:
        return click.prompt(prompt, default=default, type=value_type, err=True)
    return default


def _load(image_path, use_sample):
    """The pixels, the input's path (None for the sample), its name and file size."""
    if use_sample:
        image = sample_image()
        return image, None, "sample", image.nbytes
    if image_path is None:
        raise click.UsageError("Missing argument 'IMAGE': name an image file, "
                               "or use --sample for the built-in sample image")
    try:
        image = kio.read_image(image_path)
    except kio.ImageIOError as e:
        raise _bad("'IMAGE'", e) from None
    return image, image_path, image_path.stem, image_path.stat().st_size


def _quality(reference, image):
    return {"psnr": psnr(reference, image), "ssim": ssim(reference, image)}


def _json_number(x):
    return None if isinstance(x, float) and math.isinf(x) else x


def _print_table(report):
    """The report as a table, then a summary line and the files written."""
    original = "original (raw)" if report["input"]["sample"] else "original"
    rows = [(original, report["input"], False), ("k-means PNG", report["kmeans"], True)]
    if report["jpeg"] is not None:
        rows.append((f"JPEG q{report['jpeg']['quality']}", report["jpeg"], True))
    click.echo(f"{'':<15}{'bytes':>13}{'ratio':>9}{'bits/px':>9}{'PSNR dB':>9}{'SSIM':>8}"
               f"{'seconds':>9}")
    for label, row, measured in rows:
        quality = (f"{row['psnr']:>9.2f}{row['ssim']:>8.4f}" if measured
                   else f"{'-':>9}{'-':>8}")
        click.echo(f"{label:<15}{row['bytes']:>13,}{row['ratio']:>8.1f}x{row['bpp']:>9.2f}"
                   f"{quality}{row['seconds']:>9.2f}")
    km = report["kmeans"]
    depth = f"{km['bit_depth']}-bit indexed PNG" if km["bit_depth"] else "truecolour PNG"
    state = "converged" if km["converged"] else "not converged (raise --steps?)"
    click.echo(f"k-means: {km['colors']} colours, {depth}, {km['steps_run']} of "
               f"{km['steps']} steps run, {state}")
    jpeg = f" and {report['jpeg']['path']}" if report["jpeg"] else ""
    click.echo(f"wrote {km['path']}{jpeg}")


@main.command()
@click.argument("image", required=False, type=click.Path(path_type=Path))
@click.option("-k", "--colors", type=click.IntRange(1, MAX_COLORS), metavar="N",
              help=f"Number of colours, 1 to {MAX_COLORS}.  [default: {DEFAULT_COLORS}; "
                   "asked for on a terminal]")
@click.option("--steps", type=click.IntRange(min=0), metavar="N",
              help=f"Most k-means (Lloyd) steps; it stops earlier once converged.  "
                   f"[default: {DEFAULT_STEPS}; asked for on a terminal]")
@click.option("--init", type=click.Choice(INITS), default="kmeans++", show_default=True,
              help="How to pick the starting colours.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Random seed: the same seed gives the same file.")
@click.option("-o", "--output", type=click.Path(path_type=Path), metavar="PATH",
              help="Output PNG.  [default: <input name>_k<N>.png here]")
@click.option("--jpeg/--no-jpeg", default=True, show_default=True,
              help="Also write a JPEG of the original, for comparison.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=kio.JPEG_QUALITY,
              show_default=True, metavar="Q", help="Quality of the comparison JPEG.")
@click.option("--jpeg-output", type=click.Path(path_type=Path), default=JPEG_OUTPUT,
              show_default=True, metavar="PATH", help="Where to write the comparison JPEG.")
@click.option("--jpeg-match-size", is_flag=True,
              help="Pick the JPEG quality whose file size is closest to the PNG's.")
@click.option("--png-level", type=click.IntRange(0, 9), default=kio.PNG_LEVEL, show_default=True,
              metavar="0-9",
              help="PNG (zlib) compression level: 0 fastest, 9 smallest (a few % smaller "
                   "than 6, several times slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--show", is_flag=True, help="Open the written files in the image viewer.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--sample", "use_sample", is_flag=True,
              help="Use the built-in sample image (generated, 1024x768) instead of IMAGE.")
@click.pass_context
def compress(ctx, image, colors, steps, init, seed, output, jpeg, jpeg_quality, jpeg_output,
             jpeg_match_size, png_level, as_json, show, quiet, use_sample):
    """Quantize IMAGE to N colours, write an indexed PNG, compare with JPEG.

    IMAGE is any file OpenCV reads (JPEG, PNG, TIFF, WebP, BMP...).  The report
    gives, for the original, the k-means PNG and the JPEG: bytes, ratio to the
    raw pixels, bits per pixel, PSNR and SSIM against the original, and seconds.
    """
    if use_sample and image is not None:
        raise click.UsageError(f"give IMAGE or --sample, not both (got '{image}')")
    if jpeg_match_size:
        if not jpeg:
            raise click.UsageError("--jpeg-match-size needs the JPEG: drop --no-jpeg")
        if ctx.get_parameter_source("jpeg_quality") is not click.core.ParameterSource.DEFAULT:
            raise click.UsageError("--jpeg-match-size picks the quality itself: "
                                   "drop --jpeg-quality")
    interactive = _stdin_is_terminal()
    if image is None and not use_sample and interactive:
        image = click.prompt("Image file", err=True, type=click.Path(
            exists=True, dir_okay=False, path_type=Path))
    colors = _ask(colors, "Number of colours", DEFAULT_COLORS,
                  click.IntRange(1, MAX_COLORS), interactive)
    steps = _ask(steps, "Most k-means steps", DEFAULT_STEPS, click.IntRange(min=0), interactive)

    started = time.perf_counter()
    pixels, in_path, name, in_bytes = _load(image, use_sample)
    read_seconds = time.perf_counter() - started
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]

    png_path = output if output is not None else Path(f"{name}_k{colors}.png")
    jpeg_path = jpeg_output if jpeg else None
    try:
        kio.check_output(png_path, avoid={"the input image": in_path})
    except kio.ImageIOError as e:
        raise _bad("'-o' / '--output'", e) from None
    if jpeg_path is not None:
        try:
            kio.check_output(jpeg_path, avoid={"the input image": in_path,
                                               "the PNG output": png_path})
        except kio.ImageIOError as e:
            raise _bad("'--jpeg-output'", e) from None

    progress = _Progress(not (quiet or as_json) and _stderr_is_terminal()
                         and height * width >= _PROGRESS_PIXELS)
    try:
        report = _run(pixels, colors, steps, init, seed, png_path, png_level, jpeg_path,
                      jpeg_quality, jpeg_match_size, progress)
    except kio.ImageIOError as e:
        raise click.ClickException(str(e)) from None
    except (ValueError, TypeError) as e:
        raise click.ClickException(f"cannot compress {name}: {e}") from None
    except MemoryError:
        raise click.ClickException(f"not enough memory for a {width}x{height} image with "
                                   f"{colors} colours: try fewer colours") from None
    finally:
        progress.done()
    if report["kmeans"]["bit_depth"] is None and not quiet:
        click.echo(f"note: {report['kmeans']['colors']} colours do not fit a PNG palette "
                   f"(at most {kio.PALETTE_MAX}): the PNG is truecolour", err=True)

    report = {"input": {"path": None if in_path is None else str(in_path),
                        "sample": use_sample, "width": width, "height": height,
                        "channels": channels, "bytes": in_bytes, "raw_bytes": pixels.nbytes,
                        "seconds": read_seconds, **size_stats(in_bytes, height, width, channels)},
              **report}
    if as_json:
        click.echo(json.dumps(_as_json(report), indent=2))
    elif not quiet:
        _print_table(report)
    if show:
        for path in (png_path, jpeg_path):
            if path is not None:
                click.launch(str(path))


def _run(pixels, colors, steps, init, seed, png_path, png_level, jpeg_path, jpeg_quality,
         jpeg_match_size, progress):
    """Quantize, encode, measure, then write the files; the report's kmeans and jpeg parts."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]

    progress(f"k-means, {colors} colours")
    started = time.perf_counter()
    q = quantize(pixels, colors, steps=steps, init=init, seed=seed,
                 progress=lambda done, total: progress(
                     f"k-means, {colors} colours, step {done}/{total}"))
    progress("encoding the PNG")
    png = kio.png_bytes(q.palette, q.labels, level=png_level)
    files = {png_path: png}
    kmeans = {"path": str(png_path), "bytes": len(png), "colors": len(q.palette),
              "bit_depth": kio.palette_bit_depth(len(q.palette)), "steps": steps,
              "steps_run": q.steps_run, "converged": q.converged,
              "seconds": time.perf_counter() - started,
              **size_stats(len(png), height, width, channels)}
    progress("measuring the PNG")
    kmeans.update(_quality(pixels, q.image().reshape(pixels.shape)))

    report = {"kmeans": kmeans, "jpeg": None}
    if jpeg_path is not None:
        progress("encoding the JPEG")
        started = time.perf_counter()
        if jpeg_match_size:
            jpeg_quality, jpeg = kio.jpeg_for_size(pixels, len(png))
        else:
            jpeg = kio.encode_jpeg(pixels, jpeg_quality)
        files[jpeg_path] = jpeg
        report["jpeg"] = {"path": str(jpeg_path), "bytes": len(jpeg), "quality": jpeg_quality,
                          "seconds": time.perf_counter() - started,
                          **size_stats(len(jpeg), height, width, channels)}
        progress("measuring the JPEG")
        # JPEG keeps no alpha: compare the colour channels only
        reference = pixels[:, :, :3] if channels == 4 else pixels
        report["jpeg"].update(_quality(reference, kio.decode_image(jpeg, "the JPEG")))
    progress("writing")
    kio.write_files(files)
    return report


def _as_json(report):
    return {part: None if values is None else {k: _json_number(v) for k, v in values.items()}
            for part, values in report.items()}
