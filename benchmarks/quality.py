"""Quality study: kmeans-fast against libimagequant, pngquant, Pillow and scikit-learn.

    python -m benchmarks.quality            # 19 images, k = 16, 64, 256 -> benchmarks/results/
    python -m benchmarks.quality --quick    # 7 images, k = 16, 64 -> benchmarks/_work/quality-quick/
    python -m benchmarks.quality --from-json FILE   # rewrite QUALITY.md only

Every image of :mod:`benchmarks.quality_images` (real photos, near-grey photos,
flat graphics with gradients) is quantized at each k by

* kmeans-fast ``quantize(image, k, seed=0)`` at its defaults (plain k-means:
  the CLI's ``--plain``), and at every setting of :data:`KF_SETTINGS` (colour space, dithering)
  that this kmeans_fast offers -- the others are reported "not available";
* libimagequant (``imagequant``) at dithering 0 and 1.0;
* Pillow ``Image.quantize`` median cut, undithered and Floyd-Steinberg;
* ``pngquant`` (when on the PATH) with ``--nofs`` and with its default dithering;
* scikit-learn k-means++ run to convergence on the distinct colours weighted by
  their counts (PSNR only: the best a local k-means search finds).

and scored with SSIMULACRA2 (the ``ssimulacra2`` package, on PNG files; it is
slow, 2.5 to 7 s per megapixel on a shared 2-core machine, so it runs on
``--jobs`` processes after each image's timings), PSNR, the seconds of the
quantization (with the remap or dithering), and the size of the PNG.
Separately, the whole ``kmeans-fast compress --no-jpeg`` command is timed
against ``pngquant`` on the same 4 MP PNG.

Writes ``QUALITY.md`` and ``quality.json``.  Only a whole full run writes to
``benchmarks/results/``; ``--quick``, a run cut down by an option, and the
hidden ``--tiny`` the tests run write under ``benchmarks/_work/`` unless
``--out`` is given, so they never overwrite the committed full results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import inspect
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from .measure import timed
from .quality_images import KINDS, quality_images, selection
from .report import seconds as fmt_seconds
from .system import load_1min, machine

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results"
DEFAULT_WORK = HERE / "_work"
TIMED_KIND = "photo"                 # the kind the headline checks are judged on

# One line per kmeans-fast setting: keyword arguments of ``quantize`` (the CLI
# flags have the same names: dither_strength -> --dither-strength).  {} is the
# defaults.  A setting whose options this kmeans_fast lacks is "not available".
KF_SETTINGS = (
    {},
    dict(space="rgb", dither="none"),
    dict(space="rgb", dither="fs"),
    dict(space="rgb", dither="fs", dither_strength=0.8),
    dict(space="rgb", dither="ordered"),
    dict(space="oklab", dither="none"),
    dict(space="oklab", dither="fs"),
    dict(space="oklab", dither="fs", dither_strength=0.8),
    dict(space="oklab", dither="ordered"),
)
KF_DEFAULTS = "kf"
LIQ_PLAIN, LIQ_DITHERED = "liq-0", "liq-1"
SKLEARN = "sklearn"


@dataclass(frozen=True)
class Mode:
    name: str
    ks: tuple
    quick: bool               # the quick image set
    size_mp: float | None     # every image at this size (None: the set's own sizes)
    per_kind: int | None      # at most this many images of each kind
    repeats: int              # timed runs per measurement at most...
    repeat_s: float           # ...while they fit in this many seconds (at least one)
    command_mp: float | None  # size of the whole-command image (None: not timed)
    command_ks: tuple
    command_repeats: int
    command_warmup: bool      # one untimed run first (loads, or compiles, Numba's cache)
    jobs: int                 # processes computing SSIMULACRA2 (1: in this process)
    command_settings: int | None = None   # the first this many KF_SETTINGS timed (None: all)


MODES = {
    # what tests/test_benchmarks.py runs: one tiny image of each kind, seconds
    "tiny": Mode("tiny", (16,), True, 0.02, 1, 1, 0.0, 0.05, (16,), 1, False, 1,
                 command_settings=2),
    # about 6 minutes on a busy 2-core machine
    "quick": Mode("quick", (16, 64), True, None, None, 3, 1.0, 4, (16,), 3, True, 2),
    # about 45 minutes on a busy 2-core machine, about half of it SSIMULACRA2 (more
    # as kmeans-fast settings become available); --no-ssimulacra2: about 8 minutes
    "full": Mode("full", (16, 64, 256), False, None, None, 3, 1.0, 4, (16, 64, 256), 3, True,
                 2),
}


class NotAvailable(Exception):
    """This kmeans_fast (or peer) lacks what a method needs."""


@dataclass(frozen=True)
class Context:
    seed: int
    tmp: Path                 # scratch folder of the image being measured
    original_png: Path        # the image, as a PNG (pngquant's input, SSIMULACRA2's reference)


@dataclass(frozen=True)
class Method:
    """One row of the tables.

    ``prepare(image, k, ctx)`` does the untimed set-up and returns ``call``;
    ``call()`` is the timed work and returns ``finish``; ``finish()`` (untimed)
    returns ``(palette (n, 3) uint8, labels (H, W) int, own_bytes or None)``.
    The same convention as :mod:`benchmarks.methods`, with the palette and
    labels kept so every method's PNG can be encoded the same way.
    """

    key: str
    label: str
    about: str
    prepare: Callable
    unavailable: Callable[[], str | None]
    scored: bool = True       # SSIMULACRA2 and PNG bytes (False: PSNR only)
    timed: bool = True
    options: dict | None = None   # kmeans-fast settings: quantize's keyword arguments


# --------------------------------------------------------------------------
# kmeans-fast
# --------------------------------------------------------------------------
def missing_options(options, fn=None):
    """Names in ``options`` that ``fn`` (default ``kmeans_fast.quantize``) does not take."""
    if fn is None:
        from kmeans_fast import quantize as fn
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [name for name in options if name not in params]


def kf_key(options):
    return "-".join([KF_DEFAULTS, *(str(v) for v in options.values())])


def kf_label(options):
    return "kmeans-fast " + (" ".join(str(v) for v in options.values())
                             or "quantize() defaults")


def cli_flags(options):
    """The ``kmeans-fast compress`` flags of a setting: dither_strength -> --dither-strength."""
    return [x for name, value in options.items()
            for x in (f"--{name.replace('_', '-')}", str(value))]


def _kf_prepare(options):
    def prepare(image, k, ctx):
        from kmeans_fast import quantize

        def call():
            try:
                q = quantize(image, k, seed=ctx.seed, **options)
            except TypeError as e:
                if "unexpected keyword" in str(e):
                    raise NotAvailable(f"not available: {e}") from None
                raise
            return lambda: (q.palette, q.labels, None)
        return call
    return prepare


def _kf_unavailable(options):
    def unavailable():
        missing = missing_options(options)
        if missing:
            return "not available: quantize() has no " + ", ".join(f"{m}=" for m in missing)
        return None
    return unavailable


def _kf_method(options):
    about = (f"`quantize(image, k, seed=0, {', '.join(f'{k}={v!r}' for k, v in options.items())})`"
             if options else "`quantize(image, k, seed=0)`: the library's defaults, plain "
             "k-means (the CLI's `--plain`)")
    return Method(kf_key(options), kf_label(options), about, _kf_prepare(options),
                  _kf_unavailable(options), options=dict(options))


# --------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------
def _needs_module(*names):
    def unavailable():
        gone = [n for n in names if importlib.util.find_spec(n) is None]
        return f"not installed: {', '.join(gone)}" if gone else None
    return unavailable


def _needs_program(name):
    return lambda: None if shutil.which(name) else f"not installed: {name} (not on the PATH)"


def palette_and_labels(pil_image):
    """(palette (n, 3) uint8, labels (H, W) uint8) of a Pillow image of <= 256 colours."""
    if pil_image.mode == "P":
        labels = np.asarray(pil_image)
        palette = np.asarray(pil_image.getpalette("RGB"), np.uint8).reshape(-1, 3)
        if labels.size and int(labels.max()) >= len(palette):
            raise ValueError(f"index {int(labels.max())} past a palette of {len(palette)}")
        return palette, labels
    rgb = np.asarray(pil_image.convert("RGB"))
    palette, labels = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    if len(palette) > 256:
        raise ValueError(f"{len(palette)} colours: not a palette image")
    return palette.astype(np.uint8), labels.reshape(rgb.shape[:2]).astype(np.uint8)


def _liq_prepare(dithering):
    def prepare(image, k, ctx):
        import imagequant
        h, w = image.shape[:2]
        rgba = np.empty((h, w, 4), np.uint8)
        rgba[:, :, :3] = image
        rgba[:, :, 3] = 255
        data = rgba.tobytes()

        def call():
            idx, pal = imagequant.quantize_raw_rgba_bytes(data, w, h, dithering_level=dithering,
                                                          max_colors=k)
            return lambda: (np.asarray(pal, np.uint8).reshape(-1, 4)[:, :3],
                            np.frombuffer(idx, np.uint8).reshape(h, w), None)
        return call
    return prepare


def _pillow_prepare(dither):
    def prepare(image, k, ctx):
        from PIL import Image
        pil = Image.fromarray(image)

        def call():
            # Pillow dithers only when mapping to a given palette: median cut first
            q = pil.quantize(colors=k, method=Image.Quantize.MEDIANCUT, kmeans=0)
            if dither:
                q = pil.quantize(palette=q, dither=Image.Dither.FLOYDSTEINBERG)
            return lambda: (*palette_and_labels(q), None)
        return call
    return prepare


def _pngquant_prepare(flags):
    def prepare(image, k, ctx):
        from PIL import Image
        out = ctx.tmp / f"pngquant_{k}_{'_'.join(f.strip('-') for f in flags) or 'fs'}.png"
        cmd = ["pngquant", "--force", *flags, "--output", str(out), str(k), "--",
               str(ctx.original_png)]

        def call():
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"pngquant exit {done.returncode}: {done.stderr.strip()}")

            def finish():
                with Image.open(out) as im:
                    im.load()
                    return (*palette_and_labels(im), out.stat().st_size)
            return finish
        return call
    return prepare


def _sklearn_prepare(image, k, ctx):
    from sklearn.cluster import KMeans
    pixels = image.reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)

    def call():
        km = KMeans(min(k, len(colours)), init="k-means++", n_init=1, max_iter=1000, tol=0,
                    random_state=ctx.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            km.fit(colours.astype(np.float64), sample_weight=counts)
        palette = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)
        return lambda: (palette, km.predict(pixels.astype(np.float64)).reshape(image.shape[:2]),
                        None)
    return call


PEERS = (
    Method(LIQ_PLAIN, "libimagequant dither 0",
           "`imagequant.quantize_raw_rgba_bytes(..., dithering_level=0.0, max_colors=k)`",
           _liq_prepare(0.0), _needs_module("imagequant")),
    Method(LIQ_DITHERED, "libimagequant dither 1",
           "the same with `dithering_level=1.0` (its default)",
           _liq_prepare(1.0), _needs_module("imagequant")),
    Method("pillow", "Pillow median cut",
           "`Image.quantize(k, MEDIANCUT, kmeans=0)` (undithered)",
           _pillow_prepare(False), _needs_module("PIL")),
    Method("pillow-fs", "Pillow median cut + FS",
           "median cut palette, then `im.quantize(palette=that, dither=FLOYDSTEINBERG)`",
           _pillow_prepare(True), _needs_module("PIL")),
    Method("pngquant-nofs", "pngquant --nofs",
           "`pngquant --force --nofs --output OUT k IN.png` (a process; time includes its "
           "start, PNG decode and encode)", _pngquant_prepare(["--nofs"]),
           _needs_program("pngquant")),
    Method("pngquant", "pngquant (dithered)",
           "`pngquant --force --output OUT k IN.png`: default dithering and speed",
           _pngquant_prepare([]), _needs_program("pngquant")),
    Method(SKLEARN, "scikit-learn k-means++ converged",
           "`KMeans(k, init='k-means++', n_init=1, max_iter=1000, tol=0, random_state=0)` on the "
           "distinct colours weighted by their counts, then `predict` (PSNR only; not timed)",
           _sklearn_prepare, _needs_module("sklearn"), scored=False, timed=False),
)


def all_methods():
    """Every method in table order: kmeans-fast settings, then the peers."""
    return [_kf_method(options) for options in KF_SETTINGS] + list(PEERS)


# --------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------
def ssimulacra2_score(original_png, distorted_png):
    """(score, seconds): ``ssimulacra2.compute_ssimulacra2`` of two PNG files."""
    from ssimulacra2 import compute_ssimulacra2
    started = time.perf_counter()
    score = float(compute_ssimulacra2(str(original_png), str(distorted_png)))
    return score, time.perf_counter() - started


def _score_job(job):
    try:
        return ssimulacra2_score(*job)
    except Exception as e:  # noqa: BLE001 (a score that fails is reported, not fatal)
        return None, f"{type(e).__name__}: {e}"


def timed_runs(call, repeats, repeat_s):
    """(median seconds, the last run's result) of up to ``repeats`` calls, fewer
    when one more would take the total past ``repeat_s``."""
    times, out = [], None
    while len(times) < repeats:
        t, out = timed(call)
        times.append(t)
        if sum(times) + t > repeat_s:
            break
    return statistics.median(times), out


def _png_level():
    """The level ``kmeans_fast.io.png_bytes`` encodes at (runs before format 2's
    ``png_level`` field used 6)."""
    from kmeans_fast import io as kio
    return kio.PNG_LEVEL


def _write_png_rgb(path, image, level=1):
    from PIL import Image
    Image.fromarray(image).save(path, compress_level=level)


def measure_image(name, kind, image, *, ks, methods, repeats, repeat_s, seed, score, tmp):
    """Every (k, method) row of one image; ``score`` maps (orig, dist) jobs to
    SSIMULACRA2 scores (None: no SSIMULACRA2)."""
    from kmeans_fast import io as kio
    from kmeans_fast.metrics import psnr

    original = tmp / f"{name}.png"
    _write_png_rgb(original, image)
    ctx = Context(seed=seed, tmp=tmp, original_png=original)
    rows, jobs = [], []
    for k in ks:
        for m in methods:
            row = dict(image=name, kind=kind, k=k, method=m.key)
            rows.append(row)
            reason = m.unavailable()
            if reason:
                row.update(status="not available" if reason.startswith("not available")
                           else "not installed", reason=reason)
                continue
            try:
                call = m.prepare(image, k, ctx)
                sec, finish = timed_runs(call, repeats if m.timed else 1, repeat_s)
                palette, labels, own_bytes = finish()
            except NotAvailable as e:
                row.update(status="not available", reason=str(e))
                continue
            except Exception as e:  # noqa: BLE001 (recorded; the study goes on)
                row.update(status="failed", reason=f"{type(e).__name__}: {e}")
                continue
            labels = np.ascontiguousarray(labels)
            palette = np.ascontiguousarray(palette, np.uint8)
            row.update(status="ok", psnr=float(psnr(image, palette[labels])),
                       colours=int(np.count_nonzero(np.bincount(labels.ravel(),
                                                                minlength=len(palette)))),
                       seconds=sec if m.timed else None)
            if m.scored:
                png = kio.png_bytes(palette, labels)
                row["bytes"] = len(png)
                if own_bytes is not None:
                    row["own_bytes"] = int(own_bytes)
                dist = tmp / f"{name}_k{k}_{m.key}.png"
                dist.write_bytes(png)
                jobs.append((row, (str(original), str(dist))))
    if score is None:
        return rows
    for (row, _), (value, extra) in zip(jobs, score([job for _, job in jobs])):
        if value is None:
            row.update(status="failed", reason=f"SSIMULACRA2: {extra}")
        else:
            row.update(ssimulacra2=value, ssimulacra2_s=extra)
    return rows


# --------------------------------------------------------------------------
# the whole command
# --------------------------------------------------------------------------
def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@lru_cache(maxsize=1)
def _cli_help():
    done = subprocess.run([sys.executable, "-m", "kmeans_fast", "compress", "--help"],
                          capture_output=True, text=True, env=_env(), cwd=ROOT,
                          stdin=subprocess.DEVNULL)
    return done.stdout


def cli_supports(options, help_text=None):
    """True when ``kmeans-fast compress --help`` lists every flag of ``options``."""
    text = _cli_help() if help_text is None else help_text
    return all(flag in text for flag in cli_flags(options)[::2])


def _run_timed(cmd, repeats):
    times, done = [], None
    for _ in range(repeats):
        t, done = timed(subprocess.run, cmd, capture_output=True, text=True, env=_env(),
                        cwd=ROOT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"exit {done.returncode}: {tail}")
        times.append(t)
    return times, done


def time_commands(mode, work, seed):
    """``kmeans-fast compress --no-jpeg`` (each CLI setting) vs ``pngquant`` on one PNG."""
    from kmeans_fast.metrics import psnr
    from PIL import Image

    from .images import generated_image

    bench = generated_image(mode.command_mp, work, seed=seed)   # the main suite's cache
    image = bench.load()
    png = Path(work) / f"{Path(bench.path).stem}.png"
    if not png.exists():
        _write_png_rgb(png.with_suffix(".tmp.png"), image, level=6)
        os.replace(png.with_suffix(".tmp.png"), png)
    info = dict(image=bench.name, source=bench.source, width=bench.width, height=bench.height,
                input_bytes=png.stat().st_size, runs=[])
    settings = [o for o in KF_SETTINGS[:mode.command_settings] if cli_supports(o)]
    info["not_in_cli"] = [kf_label(o) for o in KF_SETTINGS if not cli_supports(o)]
    with tempfile.TemporaryDirectory(prefix="kmf_quality_cmd_") as tmp:
        out = Path(tmp) / "out.png"
        base = [sys.executable, "-m", "kmeans_fast", "compress", str(png), "--no-jpeg",
                "-o", str(out), "--json", "--seed", str(seed)]
        try:   # untimed: loads (or compiles) Numba's cache, as any first run does
            if mode.command_warmup:
                _run_timed(base + ["-k", "2"], 1)
        except RuntimeError as e:
            info["runs"].append(dict(status="failed", reason=str(e)))
            return info
        for k in mode.command_ks:
            for options in settings:
                label = kf_label(options) if options else "kmeans-fast CLI defaults"
                row = dict(tool="kmeans-fast", method=kf_key(options), label=label,
                           k=k, command="kmeans-fast compress IN.png --no-jpeg -o OUT.png "
                           + " ".join([f"-k {k}", *cli_flags(options)]))
                try:
                    times, done = _run_timed(base + ["-k", str(k), *cli_flags(options)],
                                             mode.command_repeats)
                except RuntimeError as e:
                    row.update(status="failed", reason=str(e))
                else:
                    report = json.loads(done.stdout)["kmeans"]
                    row.update(status="ok", median_s=statistics.median(times), times_s=times,
                               inner_s=report["seconds"], bytes=report["bytes"],
                               psnr=report["psnr"])
                info["runs"].append(row)
            for flags, key in ((["--nofs"], "pngquant-nofs"), ([], "pngquant")):
                row = dict(tool="pngquant", method=key, label=f"pngquant {' '.join(flags)}".strip(),
                           k=k, command=" ".join(["pngquant", *flags, str(k), "IN.png"]))
                if not shutil.which("pngquant"):
                    row.update(status="not installed", reason="not installed: pngquant")
                else:
                    cmd = ["pngquant", "--force", *flags, "--output", str(out), str(k), "--",
                           str(png)]
                    try:
                        times, _ = _run_timed(cmd, mode.command_repeats)
                    except RuntimeError as e:
                        row.update(status="failed", reason=str(e))
                    else:
                        with Image.open(out) as im:
                            quantized = np.asarray(im.convert("RGB"))
                        row.update(status="ok", median_s=statistics.median(times),
                                   times_s=times, bytes=out.stat().st_size,
                                   psnr=float(psnr(image, quantized)))
                info["runs"].append(row)
    return info


# --------------------------------------------------------------------------
# the report (pure functions of the results dict)
# --------------------------------------------------------------------------
def _ok(rows, **match):
    return [r for r in rows if r.get("status") == "ok"
            and all(r.get(k) == v for k, v in match.items())]


def median_of(rows, field, **match):
    """Median of ``field`` over the ok rows matching ``match``; None when there are none."""
    values = [r[field] for r in _ok(rows, **match) if r.get(field) is not None]
    return float(np.median(values)) if values else None


def psnr_failures(rows, ours=KF_DEFAULTS, peer=LIQ_PLAIN):
    """(image, kind, k, ours dB, peer dB) wherever ``ours`` has a lower PSNR than ``peer``."""
    peer_db = {(r["image"], r["k"]): r["psnr"] for r in _ok(rows, method=peer)}
    return [(r["image"], r["kind"], r["k"], r["psnr"], peer_db[r["image"], r["k"]])
            for r in _ok(rows, method=ours)
            if (r["image"], r["k"]) in peer_db and r["psnr"] < peer_db[r["image"], r["k"]]]


def _paired(rows, field, a, b, **match):
    """(values of a, values of b) of ``field`` over the (image, k) both have."""
    other = {(r["image"], r["k"]): r[field] for r in _ok(rows, method=b, **match)}
    pairs = [(r[field], other[r["image"], r["k"]]) for r in _ok(rows, method=a, **match)
             if (r["image"], r["k"]) in other]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def paired_differences(rows, field, a, b, **match):
    """Per (image, k): ``field`` of method a minus that of method b."""
    return [x - y for x, y in zip(*_paired(rows, field, a, b, **match))]


def undithered_key(options):
    """Key of the setting with the same options but no dithering."""
    return kf_key({name: ("none" if name == "dither" else value)
                   for name, value in options.items() if name != "dither_strength"})


def _f(x, spec):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _kb(x):
    return "-" if x is None else f"{x / 1000:.1f}"


def _present(results):
    """Methods with at least one ok row, in table order."""
    done = {r["method"] for r in results["rows"] if r.get("status") == "ok"}
    return [m for m in results["methods"] if m["key"] in done]


def _absent(results):
    done = {r["method"] for r in results["rows"] if r.get("status") == "ok"}
    reasons = {}
    for r in results["rows"]:
        if r["method"] not in done:
            reasons.setdefault(r["method"], r.get("reason", r.get("status")))
    return [(m["label"], reasons[m["key"]]) for m in results["methods"] if m["key"] in reasons]


def _checks(results):
    rows, ks = results["rows"], results["mode"]["ks"]
    lines = ["## Checks", ""]
    fails = psnr_failures(rows)
    n = len(_ok(rows, method=KF_DEFAULTS))
    verdict = "met" if not fails else f"NOT met on {len(fails)} of {n}"
    lines += [f"**kmeans-fast defaults never below libimagequant's PSNR (dithering 0), on any "
              f"image and k** (issue 8): {verdict}.", ""]
    if fails:
        lines += ["| image | kind | k | kmeans-fast dB | libimagequant dB | difference |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {im} | {kind} | {k} | {a:.2f} | {b:.2f} | {a - b:+.2f} |"
                  for im, kind, k, a, b in sorted(fails, key=lambda f: (f[2], f[3] - f[4]))]
        lines.append("")

    lines += ["**kmeans-fast defaults minus scikit-learn k-means++ converged, PSNR dB**, median "
              "(min) over the images (issue 8: median >= 0 on photos):", "",
              "| k | all | " + " | ".join(KINDS) + " |", "|---|---|" + "---|" * len(KINDS)]
    for k in ks:
        cells = []
        for kind in (None, *KINDS):
            d = paired_differences(rows, "psnr", KF_DEFAULTS, SKLEARN, k=k,
                                   **({} if kind is None else {"kind": kind}))
            cells.append(f"{np.median(d):+.3f} ({min(d):+.3f})" if d else "-")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("")

    kf = [m for m in _present(results) if m["key"].startswith(KF_DEFAULTS)]
    lines += [f"**Best kmeans-fast setting vs libimagequant dithering 1.0, median SSIMULACRA2 "
              f"on {TIMED_KIND}s** (issue 7: beat it at k = 16 and 64):", "",
              "| k | best kmeans-fast setting | its median | libimagequant dither 1 | "
              "pngquant (dithered) | difference |", "|---|---|---|---|---|---|"]
    for k in ks:
        scored = [(median_of(rows, "ssimulacra2", method=m["key"], k=k, kind=TIMED_KIND), m)
                  for m in kf]
        scored = [(s, m) for s, m in scored if s is not None]
        liq = median_of(rows, "ssimulacra2", method=LIQ_DITHERED, k=k, kind=TIMED_KIND)
        pq = median_of(rows, "ssimulacra2", method="pngquant", k=k, kind=TIMED_KIND)
        if not scored:
            continue
        best, m = max(scored, key=lambda sm: sm[0])
        diff = "-" if liq is None else f"{best - liq:+.2f}"
        lines.append(f"| {k} | {m['label']} | {best:.2f} | {_f(liq, '.2f')} | {_f(pq, '.2f')} | "
                     f"{diff} |")
    lines.append("")

    dithered = [m for m in kf if (m.get("options") or {}).get("dither", "none") != "none"]
    lines += ["**Graphics with gradients: PNG growth from dithering**: the largest ratio over "
              "the graphics and k of a dithered setting's PNG to the undithered PNG in the same "
              "colour space.  These graphics have gradients, which dithering is for; issue 7's "
              "limit (+10%) is for flat graphics and is checked by "
              "`tests/test_dither.py::test_flat_graphic_grows_little`.", ""]
    if not dithered:
        lines += ["No dithering setting is available in this kmeans_fast.", ""]
    else:
        for m in dithered:
            plain = undithered_key(m["options"])
            ratios = [a / b for a, b in zip(*_paired(rows, "bytes", m["key"], plain,
                                                      kind="graphic"))]
            lines.append(f"- {m['label']}: " + (
                f"{max(ratios) - 1:+.1%} (vs {plain})" if ratios
                else f"no undithered {plain} to compare with"))
        for dithered_key, plain in ((LIQ_DITHERED, "liq-0"), ("pngquant", "pngquant-nofs")):
            ratios = [a / b for a, b in zip(*_paired(rows, "bytes", dithered_key, plain,
                                                      kind="graphic"))]
            if ratios:
                lines.append(f"- for comparison, {dithered_key}: {max(ratios) - 1:+.1%} "
                             f"(vs {plain})")
        lines.append("")
    return lines


def _median_tables(results):
    rows, ks = results["rows"], results["mode"]["ks"]
    kinds = [kind for kind in KINDS if any(r["kind"] == kind for r in rows)]
    cols = [(kind, k) for kind in kinds for k in ks]
    counts = {kind: len({r["image"] for r in rows if r["kind"] == kind}) for kind in kinds}
    lines = ["## Medians over the images of each kind", "",
             "Images per kind: " + ", ".join(f"{kind} {counts[kind]}" for kind in kinds) + ".",
             ""]
    metrics = (("SSIMULACRA2 (higher is better)", "ssimulacra2", lambda x: _f(x, ".2f")),
               ("PSNR, dB", "psnr", lambda x: _f(x, ".2f")),
               ("Seconds (quantization + remap or dithering)", "seconds", fmt_seconds),
               ("PNG size, KB (every palette and index image encoded by "
                "kmeans_fast.io.png_bytes)", "bytes", _kb))
    for title, field, fmt in metrics:
        lines += [f"### {title}", "",
                  "| method | " + " | ".join(f"{kind} k={k}" for kind, k in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for m in _present(results):
            cells = [median_of(rows, field, method=m["key"], kind=kind, k=k) for kind, k in cols]
            if all(c is None for c in cells):
                continue
            lines.append(f"| {m['label']} | " + " | ".join(fmt(c) for c in cells) + " |")
        lines.append("")
    absent = _absent(results)
    if absent:
        lines += ["Not measured: " + "; ".join(f"{label} ({why})" for label, why in absent)
                  + ".", ""]
    return lines


def _command_table(results):
    cmd = results.get("commands")
    if not cmd:
        return []
    lines = ["## The whole command", "",
             f"`kmeans-fast compress IN.png --no-jpeg -o OUT.png --json -k K` (a fresh "
             f"process: Python start, imports, Numba cache load, read, quantize, encode, "
             f"PSNR + SSIM, write) against `pngquant K IN.png` (a C program: read, quantize, "
             f"dither, encode, write; no measuring) on the same PNG: {cmd['image']} "
             f"({cmd['width']}x{cmd['height']}, {cmd['source']}; {cmd['input_bytes']:,} bytes). "
             "Median of the runs; *inside* is the time kmeans-fast reports for quantize + "
             "encode (it includes loading the Numba cache, which happens at first call).",
             "", "| k | command | seconds | inside | PNG KB | PSNR dB |",
             "|---|---|---|---|---|---|"]
    for r in cmd["runs"]:
        if r.get("status") != "ok":
            lines.append(f"| {r.get('k', '-')} | {r.get('label', '-')} | "
                         f"{r.get('reason', r.get('status'))} | | | |")
            continue
        lines.append(f"| {r['k']} | {r['label']} | {fmt_seconds(r['median_s'])} | "
                     f"{fmt_seconds(r.get('inner_s'))} | {_kb(r['bytes'])} | {r['psnr']:.2f} |")
    if cmd.get("not_in_cli"):
        lines += ["", "Not in this CLI: " + ", ".join(cmd["not_in_cli"]) + "."]
    return lines + [""]


def _per_image(results):
    rows, ks = results["rows"], results["mode"]["ks"]
    lines = ["## Per image", "",
             "SSIMULACRA2 / PSNR dB / PNG KB / seconds; pngquant's own file size in brackets "
             "when it differs.", ""]
    for im in results["images"]:
        lines += [f"### {im['name']} ({im['kind']}, {im['width']}x{im['height']}, "
                  f"{im['n_distinct']:,} colours)", "",
                  "| method | " + " | ".join(f"k={k}" for k in ks) + " |",
                  "|---|" + "---|" * len(ks)]
        for m in _present(results):
            cells = []
            for k in ks:
                r = next((r for r in rows if r["image"] == im["name"] and r["k"] == k
                          and r["method"] == m["key"]), None)
                if r is None or r.get("status") != "ok":
                    cells.append("-" if r is None else r.get("status", "-"))
                    continue
                own = r.get("own_bytes")
                size = _kb(r.get("bytes")) + (f" ({_kb(own)})" if own and own != r["bytes"]
                                              else "")
                cells.append(f"{_f(r.get('ssimulacra2'), '.1f')} / {r['psnr']:.2f} / {size} / "
                             f"{fmt_seconds(r.get('seconds'))}")
            lines.append(f"| {m['label']} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _ssimulacra2_cost(results):
    """One sentence: how long SSIMULACRA2 took, per megapixel and in all."""
    mp = {im["name"]: im["width"] * im["height"] / 1e6 for im in results["images"]}
    spent = [(r["ssimulacra2_s"], mp[r["image"]]) for r in results["rows"]
             if r.get("ssimulacra2_s") is not None and r["image"] in mp]
    if not spent:
        return ""
    per_mp = float(np.median([s / m for s, m in spent]))
    return (f"  SSIMULACRA2 took {per_mp:.1f} s per megapixel (median), "
            f"{fmt_seconds(sum(s for s, _ in spent))} in all for {len(spent)} scores, on "
            f"{results.get('jobs', '?')} processes.")


def markdown(results):
    """QUALITY.md from a results dict (as :func:`run` builds and quality.json stores)."""
    info = results["machine"]
    versions = info.get("versions", {})
    tools = results.get("tools", {})
    lines = ["# Quality study", "",
             f"Machine: {info.get('cpu', '?')}, {info.get('cores', '?')} cores; numba threads: "
             f"{results.get('numba_threads', '?')}; load {results.get('load_start', '?')} -> "
             f"{results.get('load_end', '?')}.  Run `{results.get('command', '?')}` on "
             f"{results.get('date', '?')}, {fmt_seconds(results.get('duration_s'))}.  "
             + ", ".join(f"{k} {v}" for k, v in {**versions, **tools}.items()) + ".", "",
             f"Mode {results['mode']['name']}: k = {', '.join(map(str, results['mode']['ks']))}; "
             f"seed {results.get('seed', 0)} (the CLI's).  SSIMULACRA2 (higher is better; "
             "about 30 is low quality, 70 high, 90 visually lossless) is computed by the "
             "`ssimulacra2` package between the original and each method's PNG.  PSNR is over "
             "the three channels.  Seconds: the in-process quantization with its remap or "
             "dithering, median of up to "
             f"{results['mode']['repeats']} runs (pngquant: the whole process).  Bytes: every "
             "method's palette and indices encoded by the same encoder, "
             f"`kmeans_fast.io.png_bytes` (kmeans_fast's own encoder, level "
             f"{results.get('png_level', 6)}, smallest bit depth), so sizes "
             "compare the quantizers, not the encoders." + _ssimulacra2_cost(results), ""]
    lines += _checks(results)
    lines += _median_tables(results)
    lines += _command_table(results)
    lines += ["## Images", "", "| image | kind | size | distinct colours | what |",
              "|---|---|---|---|---|"]
    lines += [f"| {im['name']} | {im['kind']} | {im['width']}x{im['height']} | "
              f"{im['n_distinct']:,} | {im['about']} |" for im in results["images"]]
    lines += ["", "## Methods", "", "| method | what runs |", "|---|---|"]
    lines += [f"| {m['label']} | {m['about']} |" for m in results["methods"]]
    lines += [""] + _per_image(results)
    return "\n".join(lines).rstrip() + "\n"


def write(results, out):
    """QUALITY.md and quality.json (one row per line) into ``out``; the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    head = {k: v for k, v in results.items() if k != "rows"}
    text = json.dumps(head, indent=1)[:-2] + ',\n "rows": [\n' + ",\n".join(
        "  " + json.dumps(r) for r in results["rows"]) + "\n ]\n}\n"
    (out / "quality.json").write_text(text)
    (out / "QUALITY.md").write_text(markdown(results))
    return [out / "QUALITY.md", out / "quality.json"]


# --------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------
def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _tool_versions():
    out = {}
    try:
        from importlib import metadata
        out["ssimulacra2"] = metadata.version("ssimulacra2")
    except Exception:  # noqa: BLE001
        pass
    if shutil.which("pngquant"):
        done = subprocess.run(["pngquant", "--version"], capture_output=True, text=True)
        out["pngquant"] = done.stdout.strip()
    return out


def _images(mode, kinds, names, size_mp, work):
    # the tiny run (the tests) takes the images whose packages are installed; a study
    # that would quietly leave images out stops instead
    sources = selection(kinds, mode.quick, names=names, installed=mode.name == "tiny")
    missing = sorted({s.missing() for s in sources if s.missing()})
    if missing:
        raise SystemExit(f"the image set needs {', '.join(missing)}: pip install '.[bench]'")
    if mode.per_kind:
        sources = [s for kind in KINDS for s in [x for x in sources if x.kind == kind]
                   [:mode.per_kind]]
    wanted = {s.name for s in sources}
    return quality_images(kinds, mode.quick, size_mp=size_mp or mode.size_mp,
                          work=Path(work) / "quality_images", names=wanted)


class _Scorer:
    """Maps SSIMULACRA2 jobs over ``jobs`` spawned processes (1: in this process)."""

    def __init__(self, jobs):
        self.pool = None
        if jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))

    def __call__(self, jobs):
        if self.pool is None:
            return [_score_job(j) for j in jobs]
        return list(self.pool.map(_score_job, jobs))

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()


def run(mode, *, kinds=None, names=None, size_mp=None, method_keys=None, jobs=None, seed=0,
        work=DEFAULT_WORK, commands=True, ssimulacra2=True, argv_text=""):
    """Measure everything ``mode`` asks for; the results dict."""
    import numba
    from kmeans_fast import quantize
    from kmeans_fast.api import DEFAULT_STEPS

    from .images import count_distinct

    if ssimulacra2 and importlib.util.find_spec("ssimulacra2") is None:
        if mode.name != "tiny":
            raise SystemExit("the study scores with the ssimulacra2 package: "
                             "pip install '.[bench]' (or run with --no-ssimulacra2)")
        ssimulacra2 = False                     # the tests' run: PSNR, bytes and times only
    started, load_start = time.perf_counter(), load_1min()
    methods = all_methods()
    if method_keys:
        unknown = [k for k in method_keys if k not in {m.key for m in methods}]
        if unknown:
            raise SystemExit(f"--methods {unknown}: choose from "
                             f"{', '.join(m.key for m in methods)}")
        methods = [m for m in methods if m.key in method_keys]
    # load the compiled kernels (every path, every k) before timing anything
    warm = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for k in mode.ks:
        for path in ("pixels", "histogram"):
            quantize(warm, k, seed=0, method=path)
    rows, images = [], []
    jobs = mode.jobs if jobs is None else jobs
    scorer = _Scorer(jobs)
    try:
        for name, kind, image in _images(mode, kinds, names, size_mp, work):
            source = next(s for s in selection(kind) if s.name == name)
            images.append(dict(name=name, kind=kind, width=image.shape[1],
                               height=image.shape[0], n_distinct=count_distinct(image),
                               about=source.about))
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="kmf_quality_") as tmp:
                got = measure_image(name, kind, image, ks=mode.ks, methods=methods,
                                    repeats=mode.repeats, repeat_s=mode.repeat_s, seed=seed,
                                    score=scorer if ssimulacra2 else None, tmp=Path(tmp))
            rows += got
            by = {(r["method"], r["k"]): r for r in got}
            summary = "; ".join(
                f"k={k}: " + ", ".join(f"{key} {_f(by[key, k].get('ssimulacra2'), '.1f')}/"
                                       f"{by[key, k]['psnr']:.2f}"
                                       for key in (KF_DEFAULTS, LIQ_PLAIN, LIQ_DITHERED)
                                       if by.get((key, k), {}).get("psnr") is not None)
                for k in mode.ks)
            _log(f"{name} ({kind}, {image.shape[1]}x{image.shape[0]}) "
                 f"{time.perf_counter() - t0:.1f} s  {summary}")
    finally:
        scorer.close()
    command_info = None
    if commands and mode.command_mp:
        _log(f"timing the whole command on a {mode.command_mp:g} MP PNG ...")
        command_info = time_commands(mode, work, seed)
        for r in command_info["runs"]:
            _log(f"  k={r.get('k')} {r.get('label')}: " + (
                f"{r['median_s']:.2f} s" if r.get("status") == "ok" else r.get("reason", "?")))
    return dict(
        suite="kmeans_fast quality study", format=2,
        command=f"python -m benchmarks.quality {argv_text}".strip(),
        date=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - started, load_start=load_start, load_end=load_1min(),
        mode=asdict(mode), seed=seed, default_steps=DEFAULT_STEPS, png_level=_png_level(),
        machine=machine(), numba_threads=numba.get_num_threads(), tools=_tool_versions(),
        jobs=jobs, ssimulacra2=ssimulacra2,
        methods=[dict(key=m.key, label=m.label, about=m.about, options=m.options,
                      scored=m.scored, timed=m.timed) for m in methods],
        images=images, rows=rows, commands=command_info)


def _csv(text, cast=str):
    return tuple(cast(x) for x in text.split(",") if x.strip())


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true",
                       help="the quick image set (7 images, generated ones <= 0.5 MP), k = 16, "
                            "64; writes to benchmarks/_work/quality-quick unless --out")
    group.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--k", type=lambda s: _csv(s, int), metavar="K,...",
                   help="colour counts (default 16,64,256; quick 16,64)")
    p.add_argument("--size-mp", type=float, metavar="MP",
                   help="every image at about this many megapixels (default: photos at "
                        "native size, generated images at 1-4 MP)")
    p.add_argument("--kinds", type=_csv, metavar="KIND,...", help=f"from {', '.join(KINDS)}")
    p.add_argument("--images", type=_csv, metavar="NAME,...", help="only these images")
    p.add_argument("--methods", type=_csv, metavar="KEY,...", help="only these methods")
    p.add_argument("--jobs", type=int,
                   help="processes computing SSIMULACRA2 (default 2; 1: in this process)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int,
                   help="Numba threads, here and in the timed kmeans-fast command (default: "
                        "all cores)")
    p.add_argument("--no-ssimulacra2", action="store_true",
                   help="skip SSIMULACRA2 (the slow part): PSNR, seconds and bytes only")
    p.add_argument("--no-command", action="store_true",
                   help="skip timing the whole kmeans-fast command against pngquant")
    p.add_argument("--out", help="where QUALITY.md and quality.json go (default: "
                                 "benchmarks/results for a whole full run, "
                                 "benchmarks/_work/quality-{quick,partial} otherwise)")
    p.add_argument("--work", default=str(DEFAULT_WORK), help="cache of generated images")
    p.add_argument("--from-json", metavar="FILE", help="only rewrite QUALITY.md from a "
                                                       "quality.json")
    return p.parse_args(argv)


def mode_of(args):
    mode = MODES["tiny" if args.tiny else "quick" if args.quick else "full"]
    return replace(mode, ks=args.k) if args.k else mode


def output_folder(args, mode):
    """``--out``; else benchmarks/results for a whole full run, and under ``--work``
    otherwise: quality-quick, quality-tiny, or quality-partial for a full run cut
    down by --k, --kinds, --images, --methods or --size-mp."""
    if args.out:
        return Path(args.out)
    if mode.name != "full":
        return Path(args.work) / f"quality-{mode.name}"
    partial = any((args.k, args.kinds, args.images, args.methods, args.size_mp,
                   args.no_ssimulacra2, args.threads))
    return Path(args.work) / "quality-partial" if partial else DEFAULT_OUT


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        out = Path(args.out) if args.out else Path(args.from_json).parent
        (out / "QUALITY.md").write_text(markdown(results))
        _log(f"wrote {out / 'QUALITY.md'}")
        return 0
    mode = mode_of(args)
    out = output_folder(args, mode)
    if args.threads:
        import numba
        numba.set_num_threads(args.threads)
        os.environ["NUMBA_NUM_THREADS"] = str(args.threads)   # the timed CLI runs too
    _log(f"mode {mode.name}: k = {mode.ks}; results to {out}")
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    results = run(mode, kinds=args.kinds, names=args.images, size_mp=args.size_mp,
                  method_keys=args.methods, jobs=args.jobs, seed=args.seed, work=args.work,
                  commands=not args.no_command, ssimulacra2=not args.no_ssimulacra2,
                  argv_text=argv_text)
    _log("\n".join(f"wrote {p}" for p in write(results, out)))
    _log(f"done in {results['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
