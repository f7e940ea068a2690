"""The ``kmeans-fast`` command.

Click only: parse the command line, ask for what is missing, call the library
(:mod:`kmeans_fast.io`, :func:`kmeans_fast.quantize`, :mod:`kmeans_fast.metrics`,
:mod:`kmeans_fast.sample`) and print the report.  Library errors become one
line on stderr and a non-zero exit: 2 for a bad command line or input file
(``click.UsageError``), 1 for a failure while working (``click.ClickException``),
130 for Ctrl-C (SIGINT) at any moment, 128 + N when signal N (SIGTERM, SIGHUP,
SIGQUIT) arrives while the files are being written (they are then removed).
Any other exception is a bug and keeps its traceback.

Start-up is kept light: this module imports only click and the standard
library.  The library (NumPy, OpenCV, Numba: about a second) is imported when
a command runs, once :meth:`_Group.main` has put its SIGINT handler in place,
so that Ctrl-C during start-up also gives one line and no traceback.
"""

from __future__ import annotations

import os
import signal
import sys


def _run_as_program():
    """Whether this process is the command itself (console script or ``python -m``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name == "kmeans_fast.__main__":
        return True
    return os.path.basename(sys.argv[0] if sys.argv else "") == "kmeans-fast"


def _interrupted_now(signum, frame=None):
    """SIGINT with nothing to clean up: one line, exit 130, at once.

    Exiting in the handler, rather than raising KeyboardInterrupt, also works
    where an exception cannot travel: Python callbacks run from C (Numba's
    compiler and cache loader call some) swallow it or turn it into a
    SystemError, and the run would go on.
    """
    try:        # on a terminal, first end the line of ^C (and of any progress)
        os.write(2, (b"\n" if os.isatty(2) else b"") + b"kmeans-fast: interrupted\n")
    except OSError:
        pass
    os._exit(128 + signum)


# Ctrl-C while Python imports click would otherwise end in a traceback.
if _run_as_program() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_now)

import contextlib  # noqa: E402  (after the start-up handler: imports take time)
import errno  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402

from . import __version__  # noqa: E402

__all__ = ["main"]

# The library's defaults, repeated here so that --help and start-up need not
# import it (tests check that they match).
DEFAULT_COLORS = 16
DEFAULT_STEPS = 30              # api.DEFAULT_STEPS
MAX_COLORS = 65536              # api.MAX_COLORS
INITS = ("kmeans++", "random")  # api.INITS
JPEG_QUALITY = 95               # io.JPEG_QUALITY
PNG_LEVEL = 5                   # io.PNG_LEVEL
PALETTE_MAX = 256               # io.PALETTE_MAX
JPEG_OUTPUT = "jpeg_compressed.jpg"
_STDOUT = "-"                   # the output path that means standard output
_PROGRESS_PIXELS = 500_000      # from about this size on, a run takes over a second
_PROGRESS_WORK = 10 ** 9        # colours x pixels from which one k-means step may take a second
_PROGRESS_AFTER = 1.0           # seconds: a run lasting longer shows its progress anyway


def _stdin_is_terminal():
    return sys.stdin is not None and sys.stdin.isatty()


def _stdout_is_terminal():
    return sys.stdout is not None and sys.stdout.isatty()


def _stderr_is_terminal():
    return sys.stderr is not None and sys.stderr.isatty()


# --------------------------------------------------------------------------
# the command group: one-line errors, signals, closed standard streams
# --------------------------------------------------------------------------
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


class _Interrupted(BaseException):
    """SIGINT (Ctrl-C).  Not a KeyboardInterrupt, which click and its prompts
    turn into "Aborted!" and exit 1."""

    signum = signal.SIGINT


@contextlib.contextmanager
def _sigint_handled():
    """While a command runs, SIGINT ends it with one line and exit 130.

    As the program itself, with no file being written, it exits at once
    (:func:`_interrupted_now`); while :mod:`kmeans_fast.io` writes (temporary
    files exist), or when the command runs inside another program (tests),
    it raises :class:`_Interrupted`, once, so that ``finally`` blocks remove
    the temporary files; a second Ctrl-C does not interrupt that clean-up.
    Left alone when SIGINT is ignored (a background job) or handled by the
    caller, and outside the main thread (where Python sets no handlers).
    """
    old = signal.getsignal(signal.SIGINT)
    if (threading.current_thread() is not threading.main_thread()
            or old not in (signal.default_int_handler, _interrupted_now)):
        yield
        return
    program = _run_as_program()
    raised = []

    def handler(signum, frame):
        writing = getattr(sys.modules.get("kmeans_fast.io"), "_writing", None)  # maybe half
        if program and not (writing is not None and writing()):                 # imported
            _interrupted_now(signum)
        if not raised:
            raised.append(signum)
            raise _Interrupted()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _signal_number(error):
    """The signal an exception stands for (ours, or io's while writing), else None."""
    if isinstance(error, _Interrupted):
        return error.signum
    kio = sys.modules.get("kmeans_fast.io")
    if kio is not None and isinstance(error, kio.Interrupted):
        return error.signum
    return None


@contextlib.contextmanager
def _standard_streams():
    """Open closed standard file descriptors (``2>&-``) on /dev/null.

    Otherwise the next file opened takes their number, and what C libraries
    print on fd 2 would go into it.  A closed stderr then swallows messages
    instead of breaking on them; a closed stdout stays ``None`` (``-o -``
    refuses it).
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    saved = sys.stderr
    if saved is None:
        sys.stderr = open(os.devnull, "w")      # click's messages go there
    try:
        yield
    finally:
        if saved is None:
            sys.stderr.close()
            sys.stderr = saved


@contextlib.contextmanager
def _parsing(args):
    """While arguments are parsed: --help and --version print then, and a
    standard output that fails (a full disk) is one line, not a traceback."""
    # before parsing consumes the list; click runs the first of them given
    first = next((a for a in (args or ()) if a in ("-h", "--help", "--version")), None)
    version = first == "--version"
    try:
        yield
    except OSError as e:
        _stdout_failed(e, "the version" if version else "the help")


class _Command(click.Command):
    """A command whose --help output failing is one line (see :func:`_parsing`)."""

    def make_context(self, info_name, args, *more, **kwargs):
        with _parsing(args):
            return super().make_context(info_name, args, *more, **kwargs)


class _Group(click.Group):
    """A click group whose usage errors, its commands' included, print as one
    line, and which ends on Ctrl-C (and on signals while writing) with one line."""

    command_class = _Command

    def make_context(self, info_name, args, *more, **kwargs):
        with _one_line_errors(), _parsing(args):
            return super().make_context(info_name, args, *more, **kwargs)

    def invoke(self, ctx):
        with _one_line_errors():
            return super().invoke(ctx)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        signum = None
        with _standard_streams(), _sigint_handled():
            try:
                return super().main(args, prog_name, complete_var, standalone_mode, **extra)
            except BaseException as e:
                signum = _signal_number(e)
                if signum is None or not standalone_mode:
                    raise
                what = ("interrupted" if signum == signal.SIGINT else
                        f"stopped by {signal.Signals(signum).name} while writing: "
                        "no file was changed")
                with contextlib.suppress(Exception):
                    click.echo(f"kmeans-fast: {what}", err=True)
        sys.exit(128 + signum)


@click.group("kmeans-fast", cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kmeans-fast")
def main():
    """Compress images by exact, deterministic k-means colour quantization."""


# --------------------------------------------------------------------------
# progress and output
# --------------------------------------------------------------------------
class _Progress:
    """Stage messages on one rewritten stderr line, for runs that are long.

    Enabled only where someone watches (stderr a terminal, no --json or
    --quiet).  Messages are drawn once :meth:`show` was called (the run will
    be long: a large image, or many colours for its size), or once the run
    has lasted ``_PROGRESS_AFTER`` seconds (a timer thread draws the current
    stage then, whatever the image's size).
    """

    def __init__(self, enabled):
        self.enabled = enabled
        self.shown = False
        self.width = 0
        self.message = None
        self.lock = threading.Lock()
        self.timer = None
        if enabled:
            self.timer = threading.Timer(_PROGRESS_AFTER, self.show)
            self.timer.daemon = True
            self.timer.start()

    def __call__(self, message):
        with self.lock:
            if self.enabled:
                self.message = message
                if self.shown:
                    self._draw()

    def show(self):
        """Draw the stage from now on, starting with the current one."""
        with self.lock:
            if self.enabled and not self.shown:
                self.shown = True
                if self.message:
                    self._draw()

    def _draw(self):
        text = f"kmeans-fast: {self.message}..."
        click.echo("\r" + text.ljust(self.width), nl=False, err=True)
        self.width = len(text)

    def done(self):
        if self.timer is not None:
            self.timer.cancel()
        with self.lock:
            if self.enabled and self.width:
                click.echo("\r" + " " * self.width + "\r", nl=False, err=True)
            self.enabled = False
            self.width = 0


def _stdout_failed(error, what):
    """Standard output cannot be written: one line, exit 1 (EPIPE: click's quiet exit)."""
    if error.errno == errno.EPIPE:
        raise error
    # what stays in stdout's buffer would fail again, with a traceback, at exit
    with contextlib.suppress(Exception):
        if sys.stdout.fileno() == 1:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.close(null)
    raise click.ClickException(f"cannot write {what} to standard output: "
                               f"{error.strerror or error}") from None


def _write_stdout(data, what):
    """All of ``data`` to standard output.  A pipe whose reader leaves midway
    takes part of a write and fails the next: the binary buffer returns the
    part's length rather than raising, so the rest is written until it does."""
    try:
        sys.stdout.flush()
        view = memoryview(data)
        while len(view):
            n = sys.stdout.buffer.write(view)
            if not n:
                raise OSError(errno.EIO, "nothing written")
            view = view[n:]
        sys.stdout.buffer.flush()
    except OSError as e:
        _stdout_failed(e, what)


@contextlib.contextmanager
def _printing_report(to_stderr):
    try:
        yield
    except OSError as e:
        if to_stderr:
            raise
        _stdout_failed(e, "the report")


# --------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------
def _bad(param_hint, error):
    return click.BadParameter(str(error), param_hint=param_hint)


def _ask(value, prompt, default, value_type):
    if value is not None:
        return value
    return click.prompt(prompt, default=default, type=value_type, err=True)


def _image_answer(text):
    """The image path typed, pasted or dragged in at the prompt.

    Terminals quote a dragged-in path ('...' or "...") or escape its spaces
    (My\\ Photo.jpg): both are undone; ``~`` is expanded.
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    elif "\\" in text and not os.path.exists(os.path.expanduser(text)):
        with contextlib.suppress(ValueError):
            parts = shlex.split(text)
            if len(parts) == 1:
                text = parts[0]
    path = os.path.expanduser(text)
    return click.Path(exists=True, dir_okay=False, path_type=Path).convert(path, None, None)


def _output_path(value, default_name, option):
    """Where an output goes: a Path, or _STDOUT for '-'.

    None gives ``default_name`` in the current folder; a value ending in '/'
    names a folder, and the file is ``default_name`` in it.
    """
    if value is None:
        return Path(default_name)
    if value == "-":
        return _STDOUT
    if value == "":
        raise _bad(option, "an empty name: give a file name")
    if value.endswith(("/", os.sep)):
        return Path(value) / default_name
    return Path(value)


def _check_outputs(kio, outputs, in_path):
    """Refuse, before any work, outputs that cannot or should not be written.

    ``outputs``: (path, option, flag, given, kind, suffixes) for the PNG and
    the JPEG; path None: no such output.
    """
    if sum(out[0] is _STDOUT for out in outputs) > 1:
        raise click.UsageError("'-o -' and '--jpeg-output -' both name standard output: "
                               "only one file can go there")
    avoid = {"the input image": in_path}
    for path, option, flag, given, kind, suffixes in outputs:
        if path is None:
            continue
        if path is _STDOUT:
            if sys.stdout is None:
                raise _bad(option, "'-' means standard output, which is closed: "
                                   "give a file name")
            if _stdout_is_terminal():
                raise _bad(option, "'-' means standard output, which is a terminal: "
                                   "redirect it to a file or a pipe (... > out.png)")
            continue
        try:
            kio.check_output(path, avoid=avoid)
        except kio.ImageIOError as e:
            if given:
                raise _bad(option, e) from None
            raise click.UsageError(f"{e}, or name the file with {flag}") from None
        if path.suffix.lower() not in suffixes:
            raise _bad(option, f"'{path}' does not end in {' or '.join(suffixes)}, but the "
                               f"file written is a {kind}: name it, say, "
                               f"'{path.with_suffix(suffixes[0])}'")
        avoid = {**avoid, f"the {kind} output": path}


def _load(kio, image_path, use_sample, max_pixels):
    """The pixels, the input's path (None for the sample), its size in bytes, notes."""
    if use_sample:
        from .sample import sample_image
        image = sample_image()
        return image, None, image.nbytes, []
    limit = "auto" if max_pixels is None else (max_pixels or None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", kio.MultiFrameWarning)
        try:
            image = kio.read_image(image_path, max_pixels=limit)
        except kio.ImageIOError as e:
            raise _bad("'IMAGE'", e) from None
    notes = []
    for w in caught:
        if issubclass(w.category, kio.MultiFrameWarning):
            notes.append(str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return image, image_path, image_path.stat().st_size, notes


# --------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------
def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _summary(km, k):
    """The line after the table: the palette, the PNG, what k-means did."""
    n = km["colors"]
    depth = f"{km['bit_depth']}-bit indexed PNG" if km["bit_depth"] else "truecolour PNG"
    head = f"k-means: {_plural(n, 'colour')}, {depth}"
    if km["shared_palette"]:
        return f"{head}, the shared palette"
    if km["distinct_colors"] <= k:
        has = "only " if km["distinct_colors"] < k else "exactly "
        return f"{head}; the image has {has}{_plural(km['distinct_colors'], 'colour')}: " \
               "all kept exactly"
    if km["steps"] == 0:
        return f"{head}; no k-means step run (--steps 0): the initial colours"
    state = ("converged" if km["converged"]
             else "the limit (more --steps would refine the colours a little)")
    line = f"{head}, {km['steps_run']} of {_plural(km['steps'], 'step')} run, {state}"
    if km.get("target_reached"):
        line += (f"; the fewest colours reaching PSNR {km['target_psnr']:g} dB undithered "
                 f"({km['undithered_psnr']:.2f}), of {', '.join(map(str, km['colors_tried']))} "
                 "tried")
    return line


def _print_table(report, k, err):
    """The report as a table, then a summary line and the files written."""
    def echo(text):
        click.echo(text, err=err)

    original = "original (raw)" if report["input"]["sample"] else "original"
    rows = [(original, report["input"], False), ("k-means PNG", report["kmeans"], True)]
    if report["jpeg"] is not None:
        rows.append((f"JPEG q{report['jpeg']['quality']}", report["jpeg"], True))
    echo(f"{'':<15}{'bytes':>13}{'ratio':>9}{'bits/px':>9}{'PSNR dB':>9}{'SSIM':>8}"
         f"{'seconds':>9}")
    for label, row, measured in rows:
        quality = (f"{row['psnr']:>9.2f}{row['ssim']:>8.4f}" if measured
                   else f"{'-':>9}{'-':>8}")
        echo(f"{label:<15}{row['bytes']:>13,}{row['ratio']:>8.1f}x{row['bpp']:>9.2f}"
             f"{quality}{row['seconds']:>9.2f}")
    echo(_summary(report["kmeans"], k))
    if report.get("skipped"):
        echo("wrote nothing: " + report["skipped"])
        return
    written = [f"the {kind} to standard output" if part["path"] == _STDOUT else part["path"]
               for kind, part in (("PNG", report["kmeans"]), ("JPEG", report["jpeg"]))
               if part is not None]
    echo("wrote " + " and ".join(written))


# --------------------------------------------------------------------------
# compress
# --------------------------------------------------------------------------
SPACES = ("rgb", "oklab")          # api.SPACES
DITHERS = ("none", "fs", "ordered")  # api.DITHERS
DEFAULT_SPACE = "oklab"          # pipeline.Options.space: README, How it looks
DEFAULT_DITHER = "fs"             # pipeline.Options.dither


class _IntRange(click.IntRange):
    """click.IntRange, named for people: "'1.5' is not a valid whole number"
    (click says "integer range")."""

    name = "whole number"


class _FloatRange(click.FloatRange):
    """click.FloatRange that also refuses NaN, which passes every range check;
    "'abc' is not a valid number" (click says "float range")."""

    name = "number"

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if value != value:
            self.fail(f"{value!r} is not a number", param, ctx)
        return value


@main.command()
@click.argument("images", nargs=-1, type=click.Path(path_type=Path), metavar="[IMAGE]...")
@click.option("-k", "--colors", type=_IntRange(1, MAX_COLORS), metavar="N",
              help=f"Number of colours, 1 to {MAX_COLORS} (with --psnr: the most).  "
                   f"[default: {DEFAULT_COLORS}; asked for on a terminal when no IMAGE is "
                   "given]")
@click.option("--steps", type=_IntRange(min=0), metavar="N",
              help=f"Most k-means (Lloyd) steps; it stops earlier once converged.  "
                   f"[default: {DEFAULT_STEPS}; asked for on a terminal when no IMAGE is "
                   "given]")
@click.option("--init", type=click.Choice(INITS), default="kmeans++", show_default=True,
              help="How to pick the starting colours.")
@click.option("--seed", type=_IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Random seed: the same seed gives the same file.")
@click.option("--space", type=click.Choice(SPACES),
              help="Where colour distances are measured: the channel values, or Oklab "
                   f"(perceptual).  [default: {DEFAULT_SPACE}]")
@click.option("--dither", type=click.Choice(DITHERS),
              help="Dithering: none (every pixel its nearest colour), fs (error diffusion), "
                   f"ordered (a threshold pattern).  [default: {DEFAULT_DITHER}]")
@click.option("--plain", is_flag=True,
              help="Plain k-means: --space rgb --dither none (the lowest squared error, "
                   "bands in gradients).")
@click.option("--dither-strength", type=_FloatRange(0, 1), default=1.0,
              show_default=True, metavar="0-1", help="How much of the error dithering uses.")
@click.option("--psnr", "target_psnr", type=_FloatRange(min=0, min_open=True),
              metavar="DB",
              help="Use the fewest colours (at most -k) whose undithered result reaches "
                   "this PSNR in dB.")
@click.option("-o", "--output", type=click.Path(allow_dash=True), metavar="PATH",
              help="Output PNG (a name ending in .png); a folder ending in '/' to write "
                   "the default name there; '-' for standard output (the report then goes "
                   "to stderr).  One IMAGE only.  [default: <input name>_k<N>.png here]")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Folder for the outputs (created if missing).  [default: the current "
                   "folder]")
@click.option("-r", "--recursive", is_flag=True,
              help="Look for images in the sub-folders of folders given as IMAGE too.")
@click.option("--shared-palette", is_flag=True,
              help="One palette for all the images (k-means of all their pixels together).")
@click.option("-j", "--jobs", type=_IntRange(min=1), metavar="N",
              help="Images compressed at once, in separate processes.  [default: one per "
                   "core]")
@click.option("--skip-existing", is_flag=True,
              help="Leave out images whose outputs exist already.")
@click.option("--skip-if-larger", is_flag=True,
              help="Write nothing for an image whose PNG would be larger than its file.")
@click.option("--jpeg/--no-jpeg", default=True, show_default=True,
              help="Also write a JPEG of the original, for comparison.")
@click.option("--jpeg-quality", type=_IntRange(1, 100), default=JPEG_QUALITY,
              show_default=True, metavar="Q", help="Quality of the comparison JPEG.")
@click.option("--jpeg-output", type=click.Path(allow_dash=True), default=JPEG_OUTPUT,
              show_default=True, metavar="PATH",
              help="Where to write the comparison JPEG (.jpg or .jpeg; a folder ending in "
                   "'/'; '-' for standard output).  One IMAGE only; several are named "
                   "<name>_q<Q>.jpg.")
@click.option("--jpeg-match-size", is_flag=True,
              help="Pick the JPEG quality whose file size is closest to the PNG's.")
@click.option("--png-level", type=_IntRange(0, 9), default=PNG_LEVEL, show_default=True,
              metavar="0-9",
              help="PNG compression level: 0 fastest, 9 smallest (on photos about 6% smaller "
                   "than 5 at 16 colours, 1-5% at 64-256, 3-17 times slower).")
@click.option("--optimize", is_flag=True,
              help="Also run a lossless PNG optimizer (oxipng): smaller, much slower.")
@click.option("--max-pixels", type=_IntRange(min=0), metavar="N",
              help="Refuse images of more than N pixels (0: no limit), checked from the "
                   "file's header before decoding.  [default: 500,000,000, less when the "
                   "memory available is short]")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON (one object per line for several images).")
@click.option("--show", is_flag=True, help="Open the written files in the image viewer.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--sample", "use_sample", is_flag=True,
              help="Use the built-in sample image (generated, 1024x768) instead of IMAGE.")
@click.pass_context
def compress(ctx, images, colors, steps, init, seed, space, dither, plain, dither_strength,
             target_psnr, output, out_dir, recursive, shared_palette, jobs, skip_existing,
             skip_if_larger, jpeg, jpeg_quality, jpeg_output, jpeg_match_size, png_level,
             optimize, max_pixels, as_json, show, quiet, use_sample):
    """Quantize IMAGE to N colours, write an indexed PNG, compare with JPEG.

    IMAGE is any file OpenCV reads (JPEG, PNG, TIFF, WebP, BMP...), or a folder
    of them; several may be given.  The report gives, for the original, the
    k-means PNG and the JPEG: bytes, ratio to the raw pixels, bits per pixel,
    PSNR and SSIM against the original, and seconds; for several images, a
    line per image and the totals.  Without IMAGE (and without --sample), on
    a terminal, it asks for the image, the number of colours and the steps.
    """
    from . import io as kio     # the library: imported now, not at start-up (see _Group)
    kio.return_freed_memory()   # image-sized temporaries go back to the OS when freed
    if _run_as_program():
        from ._jit import skip_blas_probe
        skip_blas_probe()       # start-up: no scipy.linalg (a library user keeps Numba's)

    def given(name):
        return ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT

    if use_sample and images:
        raise click.UsageError(f"give IMAGE or --sample, not both (got '{images[0]}')")
    if jpeg_match_size:
        if not jpeg:
            raise click.UsageError("--jpeg-match-size needs the JPEG: drop --no-jpeg")
        if given("jpeg_quality"):
            raise click.UsageError("--jpeg-match-size picks the quality itself: "
                                   "drop --jpeg-quality")
    if plain and (space not in (None, "rgb") or dither not in (None, "none")):
        raise click.UsageError("--plain means --space rgb --dither none: drop "
                               + ("--space" if space not in (None, "rgb") else "--dither"))
    space = space or ("rgb" if plain else DEFAULT_SPACE)
    dither = dither or ("none" if plain else DEFAULT_DITHER)
    if given("dither_strength") and dither == "none":
        raise click.UsageError("--dither-strength needs --dither fs or ordered")
    if not images and not use_sample:
        if not _stdin_is_terminal():
            raise click.UsageError("Missing argument 'IMAGE': name an image file, "
                                   "or use --sample for the built-in sample image")
        images = (click.prompt("Image file", err=True, value_proc=_image_answer),)
        colors = _ask(colors, "Number of colours", DEFAULT_COLORS,
                      _IntRange(1, MAX_COLORS))
        steps = _ask(steps, "Most k-means steps", DEFAULT_STEPS, _IntRange(min=0))
    colors = DEFAULT_COLORS if colors is None else colors
    steps = DEFAULT_STEPS if steps is None else steps
    from .pipeline import Options
    options = Options(colors=colors, steps=steps, init=init, seed=seed, space=space,
                      dither=dither, dither_strength=dither_strength,
                      target_psnr=target_psnr, png_level=png_level, optimize=optimize,
                      jpeg=jpeg, jpeg_quality=jpeg_quality, jpeg_match_size=jpeg_match_size,
                      skip_if_larger=skip_if_larger)
    batch = len(images) > 1 or any(Path(i).is_dir() for i in images)
    if batch:
        for flag, name in (("-o", "output"), ("--jpeg-output", "jpeg_output")):
            if given(name):
                raise click.UsageError(f"{flag} names one file: with several images use "
                                       "--out-dir (outputs are named after each image)")
        _compress_batch(kio, images, options, out_dir or Path("."), recursive=recursive,
                        shared_palette=shared_palette, jobs=jobs, skip_existing=skip_existing,
                        max_pixels=max_pixels, as_json=as_json, quiet=quiet, show=show)
        return
    for flag, name, hint in (("--shared-palette", "shared_palette", "several images"),
                             ("--recursive", "recursive", "a folder"),
                             ("--jobs", "jobs", "several images")):
        if given(name):
            raise click.UsageError(f"{flag} is for {hint}: one image was given")
    _compress_one(ctx, kio, None if use_sample else images[0], options, output=output,
                  out_dir=out_dir, jpeg_output=jpeg_output if given("jpeg_output") else None,
                  skip_existing=skip_existing, max_pixels=max_pixels, as_json=as_json,
                  quiet=quiet, show=show)


def _json_ready(report):
    from .pipeline import json_ready
    return json_ready(report)


def _first_run_note(quiet):
    """The one-line "compiling kernels" note, on a terminal, when not quiet."""
    if quiet:
        return contextlib.nullcontext()
    from ._jit import first_run_note
    return first_run_note(sys.stderr)


def _compress_one(ctx, kio, image, options, *, output, out_dir, jpeg_output, skip_existing,
                  max_pixels, as_json, quiet, show):
    from .pipeline import output_names, run

    use_sample = image is None
    name = "sample" if use_sample else image.stem
    png_name, jpeg_name = output_names(name, options, batch=False)
    if out_dir is not None:
        if output is not None and output != "-" and not output.endswith(("/", os.sep)):
            output = str(out_dir / output) if not Path(output).is_absolute() else output
        elif output is None:
            output = str(out_dir) + os.sep
        if jpeg_output is None:
            jpeg_output = str(out_dir) + os.sep
        _make_folder(kio, out_dir)
    png_path = _output_path(output, png_name, "'-o' / '--output'")
    jpeg_path = (_output_path(jpeg_output, jpeg_name, "'--jpeg-output'")
                 if options.jpeg else None)
    _check_outputs(kio, [(png_path, "'-o' / '--output'", "-o", output is not None, "PNG",
                          (".png",)),
                         (jpeg_path, "'--jpeg-output'", "--jpeg-output",
                          jpeg_output is not None, "JPEG", (".jpg", ".jpeg"))],
                   None if use_sample else image)
    if skip_existing and all(p is None or (p is not _STDOUT and p.exists())
                             for p in (png_path, jpeg_path)):
        if not quiet:
            click.echo(f"skipped {name}: its outputs exist (--skip-existing)", err=True)
        return
    to_stderr = _STDOUT in (png_path, jpeg_path)

    progress = _Progress(not (quiet or as_json) and _stderr_is_terminal())
    stdout_file = {}

    def write(files):
        to_stdout = files.pop(_STDOUT, None)
        kio.write_files(files)
        if to_stdout is not None:
            stdout_file["data"] = to_stdout

    try:
        progress(f"reading {name}")
        started = time.perf_counter()
        pixels, in_path, in_bytes, notes = _load(kio, image, use_sample, max_pixels)
        read_seconds = time.perf_counter() - started
        height, width = pixels.shape[:2]
        if (height * width >= _PROGRESS_PIXELS
                or options.colors * height * width >= _PROGRESS_WORK):
            progress.show()
        try:
            with _first_run_note(quiet or as_json):
                report = run(pixels, png_path, jpeg_path, options, source=in_path,
                             source_bytes=None if use_sample else in_bytes,
                             read_seconds=read_seconds, progress=progress, write=write)
        except kio.ImageIOError as e:
            raise click.ClickException(str(e)) from None
        except MemoryError:
            raise click.ClickException(f"not enough memory for a {width}x{height} image "
                                       f"with {options.colors} colours: try fewer colours"
                                       ) from None
    finally:
        progress.done()
    if "data" in stdout_file:
        _write_stdout(stdout_file["data"], "the PNG" if png_path is _STDOUT else "the JPEG")
    if not quiet:
        for note in notes + _notes(report, as_json):
            click.echo(f"note: {note}", err=True)
    with _printing_report(to_stderr):
        if as_json:
            click.echo(json.dumps(_json_ready(report), indent=2), err=to_stderr)
        elif not quiet:
            _print_table(report, options.colors, to_stderr)
    if show and report["skipped"] is None:
        _show([path for path in (png_path, jpeg_path)
               if path is not None and path is not _STDOUT], quiet)


def _show(paths, quiet):
    """--show: open each file in the desktop's viewer; a note (on stderr, the
    run still a success: the files are written) when there is none."""
    if not paths:
        return

    def note(text):
        if not quiet:
            click.echo(f"note: --show: {text}", err=True)

    if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY")):
        note("no display (DISPLAY and WAYLAND_DISPLAY are unset): nothing opened")
        return
    for path in paths:
        if click.launch(str(path)) != 0:
            note(f"no viewer could open {path} (is xdg-open installed?)")
            return


def options_max(max_pixels):
    """--max-pixels as read_image takes it: None -> "auto", 0 -> no limit."""
    return "auto" if max_pixels is None else (max_pixels or None)


def _make_folder(kio, folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _bad("'--out-dir'", f"cannot create folder '{folder}': "
                                  f"{e.strerror or e}") from None
    try:
        kio.check_output(folder / ".kmeans-fast-probe.png")
    except kio.ImageIOError as e:
        raise _bad("'--out-dir'", e) from None


def _notes(report, as_json):
    """Notes a run's report calls for (on stderr, before the table or the JSON)."""
    km, notes = report["kmeans"], []
    if km["bit_depth"] is None:
        notes.append(f"{km['colors']} colours do not fit a PNG palette (at most "
                     f"{PALETTE_MAX}): the PNG is truecolour (-k {PALETTE_MAX} or fewer "
                     "for an indexed PNG)")
    if km.get("target_reached") is False:
        notes.append(f"no palette of at most {km['colors']} colours reaches "
                     f"PSNR {km['target_psnr']:g} dB (undithered: {km['undithered_psnr']:.2f}"
                     "): the largest was used")
    if report.get("skipped") and as_json:       # (the table's last line says it)
        notes.append(f"nothing written: {report['skipped']} (--skip-if-larger)")
    return notes


# --------------------------------------------------------------------------
# several images
# --------------------------------------------------------------------------
class _FileProgress:
    """One rewritten stderr line: files done/total, elapsed, estimated time left."""

    def __init__(self, enabled, total):
        self.enabled, self.total, self.done, self.width = enabled, total, 0, 0
        self.started = time.perf_counter()
        self.stage = None

    def draw(self):
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        text = f"kmeans-fast: {self.done}/{self.total} images, {_clock(elapsed)} elapsed"
        if self.stage:
            text = f"kmeans-fast: {self.stage}, {_clock(elapsed)} elapsed"
        elif 0 < self.done < self.total:
            text += f", about {_clock(elapsed / self.done * (self.total - self.done))} left"
        click.echo("\r" + text.ljust(self.width), nl=False, err=True)
        self.width = len(text)

    def clear(self):
        if self.enabled and self.width:
            click.echo("\r" + " " * self.width + "\r", nl=False, err=True)
            self.width = 0


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _compress_batch(kio, images, options, out_dir, *, recursive, shared_palette, jobs,
                    skip_existing, max_pixels, as_json, quiet, show):
    from .batch import default_workers, find_images, plan, run_batch

    try:
        found = find_images(images, recursive=recursive)
        planned = plan(found, out_dir, options)
    except kio.ImageIOError as e:
        raise _bad("'IMAGE'", e) from None
    for folder in sorted({j.png.parent for j in planned}):
        _make_folder(kio, folder)
    skipped = []
    if skip_existing:
        skipped = [j for j in planned
                   if j.png.exists() and (j.jpeg is None or j.jpeg.exists())]
        planned = [j for j in planned if j not in skipped]
    progress = _FileProgress(not (quiet or as_json) and _stderr_is_terminal(), len(planned))
    results, failed = [], []

    def on_result(job, report, error):
        progress.clear()
        if error is not None:
            failed.append(job)
            click.echo(f"Error: {job.source}: {error}", err=True)
        results.append((job, report, error))
        if as_json:
            with _printing_report(False):
                line = report or {"input": {"path": str(job.source)}, "kmeans": None,
                                  "jpeg": None, "skipped": None}
                click.echo(json.dumps(_json_ready({**line, "error": error})))
        elif report is not None and report.get("skipped") and not quiet:
            click.echo(f"note: {job.source}: nothing written: {report['skipped']}", err=True)
        progress.done += 1
        progress.draw()

    def on_stage(text):
        progress.stage = text
        progress.draw()
        progress.stage = None

    workers = jobs or default_workers(len(planned))
    shared = None
    if planned:
        progress.draw()
        with _first_run_note(quiet or as_json):
            shared = run_batch(planned, options, workers=workers,
                               max_pixels=options_max(max_pixels),
                               shared_palette=shared_palette, on_result=on_result,
                               on_stage=on_stage)
    progress.clear()
    if as_json:
        for job in skipped:
            click.echo(json.dumps({"input": {"path": str(job.source)}, "kmeans": None,
                                   "jpeg": None, "skipped": "its outputs exist (--skip-existing)",
                                   "error": None}))
    elif not quiet:
        for job in skipped:
            click.echo(f"skipped {job.source}: its outputs exist (--skip-existing)")
        if results:
            _print_batch_table(results, shared, len(skipped),
                               time.perf_counter() - progress.started)
        else:
            click.echo(f"nothing to do: all {len(skipped)} images have their outputs "
                       "(--skip-existing)")
    if show:
        _show([job.png for job, report, error in results
               if error is None and not report.get("skipped")], quiet)
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(results)} images failed "
                                   "(see above); the others were written")


def _print_batch_table(results, shared, n_skipped, seconds):
    rows = sorted(results, key=lambda r: str(r[0].source))
    width = max([len(str(job.source)) for job, _, _ in rows] + [5])
    click.echo(f"{'image':<{width}}{'colours':>9}{'PNG bytes':>13}{'ratio':>8}{'PSNR dB':>9}"
               f"{'SSIM':>8}{'JPEG bytes':>12}{'seconds':>9}")
    total_in = total_png = total_jpeg = 0
    for job, report, error in rows:
        if error is not None:
            click.echo(f"{str(job.source):<{width}}  failed: {error}")
            continue
        km, jp = report["kmeans"], report["jpeg"]
        status = "  (not written: larger)" if report.get("skipped") else ""
        jpeg_bytes = f"{jp['bytes']:>12,}" if jp else f"{'-':>12}"
        click.echo(f"{str(job.source):<{width}}{km['colors']:>9}{km['bytes']:>13,}"
                   f"{km['ratio']:>7.1f}x{km['psnr']:>9.2f}{km['ssim']:>8.4f}{jpeg_bytes}"
                   f"{km['seconds'] + report['input']['seconds']:>9.2f}{status}")
        if not report.get("skipped"):
            total_in += report["input"]["bytes"]
            total_png += km["bytes"]
            total_jpeg += jp["bytes"] if jp else 0
    done = sum(1 for _, r, e in results if e is None and not r.get("skipped"))
    larger = sum(1 for _, r, e in results if e is None and r.get("skipped"))
    line = (f"{done} of {len(results)} images compressed in {seconds:.1f} s: "
            f"{total_png:,} bytes of PNG for {total_in:,} bytes of input")
    if total_jpeg:
        line += f" ({total_jpeg:,} bytes of JPEG)"
    if larger:
        line += f"; {larger} not written (larger than the input)"
    if n_skipped:
        line += f"; {n_skipped} skipped (outputs exist)"
    click.echo(line)
    if shared is not None:
        click.echo(f"shared palette: {shared['colors']} colours for {shared['images']} images,"
                   f" PSNR {shared['psnr']:.2f} dB over all their pixels (undithered)")
