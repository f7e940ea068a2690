"""Whole commands, each a fresh process: ``kmeans-fast compress``, its floor, pngquant.

For the photo stored as a PNG and as a JPEG (see :func:`benchmarks.e2e.source_files`)
and each k, every round runs, one after the other (interleaved, so a change of
load hits all of them alike):

* ``kmeans-fast compress IN -k K --out-dir DIR``: the command at its defaults
  (Oklab, Floyd-Steinberg; JPEG comparison included), and on the PNG also with
  ``--no-jpeg``, and with ``--plain --no-jpeg`` (undithered k-means);
* the **floor**: a fresh interpreter that does only what no compressor can skip,
  :data:`FLOOR_SCRIPT` (import, ``read_image``, ``quantize`` with the command's
  colour space and dithering, ``encode_png`` of the labels, write the bytes);
* ``pngquant --nofs K`` (undithered, against ``--plain``) and ``pngquant K`` (its
  default dithering, against the defaults) on the PNG (when installed);

and two baselines of memory: the interpreter with the command's modules imported
(``python -c "import kmeans_fast.cli, kmeans_fast.pipeline"``), and the command
on a 64x64 image (the fixed cost: interpreter, libraries, compiled kernels).
Each run reports its wall time and its peak RSS (``os.wait4``, as
``/usr/bin/time -v``).  The command is run as ``python -m kmeans_fast`` with the
interpreter running the suite (the ``kmeans-fast`` script does the same import).
"""

from __future__ import annotations

import shutil
import statistics
import sys
from pathlib import Path

import numpy as np

from .measure import run_process

FLOOR_SCRIPT = """\
import sys
from kmeans_fast import io, quantize
from kmeans_fast.png import encode_png
from kmeans_fast.pipeline import Options
image = io.read_image(sys.argv[1])
look = Options()                  # the command's defaults: its colour space and dithering
q = quantize(image, int(sys.argv[2]), seed=0, space=look.space, dither=look.dither,
             dither_strength=look.dither_strength)
with open(sys.argv[3], "wb") as f:
    f.write(encode_png(q.palette, q.labels))
"""
IMPORT_BASELINE = "import kmeans_fast.cli, kmeans_fast.pipeline"
TINY_SIDE = 64


def command(path, k, out_dir, *, jpeg=True, extra=()):
    """``kmeans-fast compress`` as a process."""
    cmd = [sys.executable, "-m", "kmeans_fast", "compress", str(path), "-k", str(k),
           "--out-dir", str(out_dir), *extra]
    return cmd + ([] if jpeg else ["--no-jpeg"])


def floor(path, k, out):
    return [sys.executable, "-c", FLOOR_SCRIPT, str(path), str(k), str(out)]


def pngquant(path, k, out, *, dither=False):
    return ["pngquant", *([] if dither else ["--nofs"]), "--force", "--output", str(out),
            str(k), "--", str(path)]


def _tiny_png(work):
    import cv2
    path = Path(work) / f"tiny_{TINY_SIDE}.png"
    if not path.exists():
        rng = np.random.default_rng(0)
        cv2.imwrite(str(path), rng.integers(0, 256, (TINY_SIDE, TINY_SIDE, 3), np.uint8))
    return path


def plan(files, ks, out, *, jpeg_inputs=True, no_jpeg=True, with_pngquant=True):
    """[(key, cmd)] of one round: key = (what, input, k)."""
    runs = []
    for k in ks:
        for ext, label in ((".png", "PNG"), (".jpg", "JPEG")):
            if ext == ".jpg" and not jpeg_inputs:
                continue
            path = files[ext]
            runs.append((("command", label, k), command(path, k, out)))
            if ext == ".png" and no_jpeg:
                runs.append((("command --no-jpeg", label, k), command(path, k, out,
                                                                      jpeg=False)))
                runs.append((("command --plain --no-jpeg", label, k),
                             command(path, k, out, jpeg=False, extra=("--plain",))))
            runs.append((("floor", label, k), floor(path, k, out / "floor.png")))
            if ext == ".png" and with_pngquant:
                runs.append((("pngquant --nofs", label, k), pngquant(path, k,
                                                                     out / "pngquant.png")))
                runs.append((("pngquant", label, k), pngquant(path, k, out / "pngquant.png",
                                                              dither=True)))
    return runs


def _clear(folder):
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def _summary(key, found):
    ok = [r for r in found if r["returncode"] == 0]
    row = dict(what=key[0], input=key[1], k=key[2])
    if len(ok) < len(found):
        return dict(row, status="failed", reason=next(r["error"] for r in found
                                                      if r["returncode"] != 0))
    times = [r["seconds"] for r in ok]
    return dict(row, status="ok", times_s=times, median_s=statistics.median(times),
                min_s=min(times), peak_rss_bytes=max(r["peak_rss_bytes"] for r in ok),
                cpu_s=statistics.median(r["cpu_s"] for r in ok))


def command_timings(files, work, *, ks, repeats, env, decoded_bytes, jpeg_inputs=True,
                    no_jpeg=True, tiny_baseline=True, log=None):
    """Every round of :func:`plan` and the baselines, ``repeats`` times.

    Returns a dict: ``rows`` (one per (what, input, k): median seconds, peak RSS),
    ``baselines`` and ``pngquant`` (its version, or why it did not run).
    """
    log = log or (lambda text: None)
    work = Path(work)
    out = work / "commands_out"
    have_pngquant = shutil.which("pngquant") is not None
    runs = plan(files, ks, out, jpeg_inputs=jpeg_inputs, no_jpeg=no_jpeg,
                with_pngquant=have_pngquant)
    baselines = [(("import baseline", "-", 0), [sys.executable, "-c", IMPORT_BASELINE])]
    if tiny_baseline:
        baselines.append((("command baseline", f"{TINY_SIDE}x{TINY_SIDE} PNG", 16),
                          command(_tiny_png(work), 16, out)))
    found = {}
    _clear(out)                           # warm-up: page cache, Numba's cache files
    run_process(next(cmd for key, cmd in runs if key[0] == "command"), env=env)
    for round_ in range(repeats):
        for key, cmd in baselines + runs:
            _clear(out)
            result = run_process(cmd, env=env)
            found.setdefault(key, []).append(result)
            log(f"  round {round_ + 1}/{repeats} {key[0]:<18} {key[1]:>5} k={key[2]:<4} "
                f"{result['seconds']:.2f} s, peak {result['peak_rss_bytes'] / 1e6:.0f} MB"
                + (f" FAILED {result['error']}" if result["returncode"] else ""))
    shutil.rmtree(out, ignore_errors=True)
    rows = [_summary(key, results) for key, results in found.items()]
    version = None
    if have_pngquant:
        import subprocess
        version = subprocess.run(["pngquant", "--version"], capture_output=True,
                                 text=True).stdout.strip()
    return dict(status="ok", repeats=repeats, decoded_bytes=decoded_bytes,
                rows=rows, floor_script=FLOOR_SCRIPT, import_baseline=IMPORT_BASELINE,
                pngquant=version or "not installed",
                inputs={label: dict(path=str(files[ext]), bytes=files[ext].stat().st_size)
                        for ext, label in ((".png", "PNG"), (".jpg", "JPEG"))})


def peak_memory(files_by_mp, work, *, k, env, log=None):
    """Peak RSS of the command at its defaults on larger photos, once each:
    ``files_by_mp`` = {megapixels: (source files, decoded bytes)}."""
    log = log or (lambda text: None)
    out = Path(work) / "memory_out"
    rows = []
    for mp, (files, decoded) in files_by_mp.items():
        for ext, label in ((".jpg", "JPEG"), (".png", "PNG")):
            _clear(out)
            result = run_process(command(files[ext], k, out), env=env)
            row = dict(megapixels=mp, input=label, k=k, decoded_bytes=decoded,
                       seconds=result["seconds"], peak_rss_bytes=result["peak_rss_bytes"],
                       status="ok" if result["returncode"] == 0 else "failed")
            if result["returncode"]:
                row["reason"] = result["error"]
            rows.append(row)
            log(f"  {mp:g} MP {label}: {result['seconds']:.1f} s, "
                f"peak {result['peak_rss_bytes'] / 1e6:.0f} MB")
    shutil.rmtree(out, ignore_errors=True)
    return rows
