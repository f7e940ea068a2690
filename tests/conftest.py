"""Shared fixtures for the CLI, io, metrics and sample tests (small images only),
and the benchmarks' tiny runs started in the background."""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from kmeans_fast import cli
from kmeans_fast.sample import sample_image

# OpenMP (Numba's threading layer) keeps a kernel's idle threads spinning for a
# while after it ends.  The suite launches tens of thousands of kernels on tiny
# images while its background benchmark runs and its child processes need the
# other core, and spinning threads take it from them: waiting passively, the
# suite took 102 s (124 s of CPU) against 123 s (159 s), on 2 cores.  libgomp
# reads this once, when the first parallel kernel loads it (after this file);
# child processes inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

# how the command looks by default: a test comparing its output with the library
# passes these to quantize, fit_palette or dither
CLI_LOOK = {"space": cli.DEFAULT_SPACE, "dither": cli.DEFAULT_DITHER}


def encode(image, ext=".png", params=()):
    """Encode RGB/RGBA/gray uint8 or uint16 pixels with OpenCV; bytes."""
    if image.ndim == 3:
        code = cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        image = cv2.cvtColor(image, code)
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


def save(path, image, ext=None, params=()):
    """Write pixels to path (any name, non-ASCII included); the path."""
    path = Path(path)
    path.write_bytes(encode(image, ext or path.suffix, params))
    return path


def chunks(data):
    """{chunk type: [payloads]} of a PNG file's bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    found, i = {}, 8
    while i < len(data):
        n, kind = int.from_bytes(data[i : i + 4], "big"), data[i + 4 : i + 8].decode()
        found.setdefault(kind, []).append(data[i + 8 : i + 8 + n])
        i += 12 + n
    return found


def ihdr(data):
    """(bit depth, colour type) of a PNG file's bytes."""
    return tuple(chunks(data)["IHDR"][0][8:10])


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.lru_cache(maxsize=None)
def _painted(height, width, seed):
    image = sample_image(height, width, seed=seed)
    image.flags.writeable = False
    return image


def sample(height, width, seed=0):
    """``sample_image(height, width, seed=seed)``, painted once per test session
    (each call paints its texture tiles: ~16 ms, whatever the size); a copy."""
    return _painted(height, width, seed).copy()


@pytest.fixture
def rgb():
    """A small photo-like RGB image, (48, 64, 3) uint8."""
    return sample(48, 64, seed=3)


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An empty folder, made the current one: tests write nothing into the repo."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def runner():
    """A CliRunner keeping stdout and stderr apart (click 8.1 and 8.2+)."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


@pytest.fixture
def image_file(work, rgb):
    """photo.png in the working folder."""
    return save(work / "photo.png", rgb)


# --------------------------------------------------------------------------
# signals as in a terminal's foreground job
# --------------------------------------------------------------------------
# A suite started in the background (``pytest &``, nohup, some CI runners) runs
# with SIGINT (and SIGHUP) ignored, and hands that down; the command rightly
# leaves an ignored SIGINT alone.  Tests of Ctrl-C put back what a foreground
# run has.
def foreground_signals():
    """In a child process (``preexec_fn``): SIGINT and the termination signals
    at their defaults, so Python installs its own SIGINT handler."""
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@pytest.fixture
def ctrl_c_works():
    """SIGINT raises KeyboardInterrupt in this process during the test, as in
    a foreground run; the previous handler comes back after."""
    saved = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


# --------------------------------------------------------------------------
# the benchmarks' tiny runs, in the background
# --------------------------------------------------------------------------
# ``python -m benchmarks --tiny`` and ``python -m benchmarks.quality --tiny``
# take tens of seconds, mostly one-core process start-ups, while the rest of
# the suite leaves the second core half idle.  As soon as the selected tests
# are known, the runs they need start in the background; their tests go last,
# and meet the finished runs (tests/test_benchmarks.py, ``finished``).
ROOT = Path(__file__).resolve().parent.parent
BACKGROUND = {                      # fixture name: the run, as ``python -m ...``
    "tiny_run": ("benchmarks", "--tiny"),
    "quality_tiny": ("benchmarks.quality", "--tiny"),
}
_runs = {}                          # fixture name: (process, folder, log file)


def _needs(item):
    return set(getattr(item, "fixturenames", ())) & set(BACKGROUND)


def pytest_collection_modifyitems(session, config, items):
    """Start the background runs the selected tests need; run those tests last."""
    needed = set().union(*map(_needs, items)) if items else set()
    if not needed or config.option.collectonly:
        return
    items[:] = [it for it in items if not _needs(it)] + [it for it in items if _needs(it)]
    for name in sorted(needed):
        start(name)


def start(name):
    """Start the background run ``name`` (once): its process, folder and log."""
    if name not in _runs:
        folder = Path(tempfile.mkdtemp(prefix=f"kmeans_fast_{name}_"))
        log = open(folder / "log.txt", "w")
        proc = subprocess.Popen([sys.executable, "-m", *BACKGROUND[name], "--out",
                                 str(folder / "out"), "--work", str(folder / "work")],
                                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        _runs[name] = (proc, folder, log)
    return _runs[name]


def finished(name, timeout_s=600):
    """(output folder, log) of the background run ``name``, waited for; it must succeed."""
    proc, folder, log = start(name)
    proc.wait(timeout=timeout_s)
    log.close()
    text = (folder / "log.txt").read_text()
    assert proc.returncode == 0, text[-3000:]
    return folder / "out", text


def pytest_sessionfinish(session, exitstatus):
    for proc, folder, log in _runs.values():
        if proc.poll() is None:     # the suite stopped early (-x, Ctrl-C)
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)
