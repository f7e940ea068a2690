"""Plan the measurements, run each in its own process, collect the results.

Measurements run one at a time (never two at once: they would share the cores),
in sections: the methods (smallest image first), the defaults with one core
busy, the end-to-end breakdown, the whole commands and the batch throughput.
Before a method's run the runner extrapolates its time from the same method
and k on the next smaller image (linearly in the pixel count); a run that
would exceed the mode's budget is skipped and marked so in the results
(except the runs the targets are judged on).  The worker repeats a run only
while the repeats fit in the mode's ``repeat_s``.

Only a whole full run writes ``benchmarks/results/``; ``--quick``, the tests'
``--tiny`` and a full run cut down by options write under ``--work``
(``quick/``, ``tiny/``, ``partial/``) unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import commands, e2e, report, system, throughput
from .images import SIZES, SOURCES, generated_image, user_images
from .methods import METHODS

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results"
DEFAULT_WORK = HERE / "_work"


SECTIONS = ("methods", "busy", "e2e", "commands", "batch")


@dataclass(frozen=True)
class Mode:
    name: str
    sizes: tuple          # megapixels of the generated images
    ks: tuple
    steps: int
    repeats: int          # timed runs per measurement at most...
    repeat_s: float       # ...while they fit in this many seconds (at least one)
    budget_s: float       # skip a run extrapolated to take longer than this
    cold_compile: bool    # time the JIT compile with an empty Numba cache
    e2e_repeats: int      # 0: no end-to-end breakdown
    png_ks: tuple = (16,)           # k of the PNG encoder study
    busy_repeats: int = 1           # quiet / busy pairs of the busy-core run
    command_repeats: int = 1        # rounds of whole-command timings
    command_inputs: tuple = ("PNG", "JPEG")   # the photo's formats the commands read
    no_jpeg: bool = True            # the command with --no-jpeg too (PNG input)
    memory_mp: tuple = ()           # larger photos whose command peak RSS is measured
    batch: tuple = (0, 0, 0, 0, 0)  # (files, width, height, loop sample, rounds)
    sections: tuple = SECTIONS
    # every method of one (image, k) in one worker process: for the tiny run, whose
    # point is that every method and section runs and writes results, and where a
    # process start-up per method would take longer than the methods.  The peak RSS
    # is then reset between methods rather than each method's process being new.
    one_worker: bool = False


MODES = {
    # what the test suite runs: seconds
    "tiny": Mode("tiny", (0.05,), (16,), 2, 2, 5.0, 60.0, False, 1, png_ks=(16,),
                 busy_repeats=1, command_repeats=1, command_inputs=("PNG",), no_jpeg=False,
                 batch=(3, 160, 120, 1, 1), one_worker=True),
    # about 8 minutes on 2 cores
    "quick": Mode("quick", (1, 4, 24), (16, 256), 10, 3, 4.0, 6.0, True, 1,
                  png_ks=(16, 256), busy_repeats=3, command_repeats=1,
                  batch=(200, 1224, 816, 20, 1)),
    # about 45 minutes on 2 cores
    "full": Mode("full", (1, 4, 24, 96), (16, 64, 256), 10, 5, 30.0, 60.0, True, 3,
                 png_ks=(16, 64, 256), busy_repeats=5, command_repeats=3, memory_mp=(96,),
                 batch=(200, 1224, 816, 20, 2)),
}


def _always_run(method, k, megapixels):
    """The runs the targets are judged on are measured whatever their estimate:
    numba auto and the defaults everywhere; on 24 MP numba pixels and
    scikit-learn at k=16, histogram and libimagequant (both ways) at k=256."""
    at_target = abs(megapixels - report.TARGET_MP) < 0.5
    return method in ("numba-auto", "numba-defaults") or at_target and (
        (method in ("numba-pixels", "sklearn") and k == 16)
        or (method in ("numba-histogram", "imagequant", "imagequant-defaults") and k == 256))


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


class Workers:
    """Starts ``python -m benchmarks.worker`` processes with a fixed environment."""

    def __init__(self, threads=None, timeout_s=600.0):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        if threads:
            for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                        "MKL_NUM_THREADS"):
                env[var] = str(threads)
        self.env = env
        self.threads = threads
        self.timeout_s = timeout_s

    def __call__(self, kind, *args, env=None, timeout_s=None):
        """The worker's result: its last JSON line, with status "ok" (or a failed row)."""
        return self.each(kind, *args, count=1, env=env, timeout_s=timeout_s)[-1]

    def each(self, kind, *args, count, env=None, timeout_s=None):
        """``count`` results of one worker that prints one JSON line per measurement
        (``run`` with several methods): those it printed, then failed rows."""
        cmd = [sys.executable, "-m", "benchmarks.worker", kind, *map(str, args)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        timeout_s = timeout_s or self.timeout_s
        try:
            done = subprocess.run(cmd, cwd=ROOT, env={**self.env, **(env or {})},
                                  capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return [dict(status="failed", reason=f"timed out after {timeout_s:.0f} s")] * count
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        rows = [dict(json.loads(ln), status="ok") for ln in lines[:count]]
        if done.returncode != 0 or len(rows) < count:
            # the measurements printed before a failure stand, but never all of them
            rows = rows[:count - 1]
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            rows += [dict(status="failed", reason=f"worker exit {done.returncode}: {tail}")
                     ] * (count - len(rows))
        return rows


def _skip(results, method, k, image, budget_s):
    """Why a run should be skipped, or None to run it.

    Its time is extrapolated from the same method and k on the next smaller
    image (linearly in pixels) or, on the smallest image, from the next smaller
    k on the same image (linearly in k, an upper bound for Lloyd steps).
    """
    if _always_run(method, k, image.megapixels):
        return None
    mine = [r for r in results if r["method"] == method]
    smaller = [r for r in mine if r["k"] == k and r["megapixels"] < image.megapixels]
    fewer = [r for r in mine if r["image"] == image.name and r["k"] < k]
    if smaller:
        last = max(smaller, key=lambda r: r["megapixels"])
        scale, basis = image.megapixels / last["megapixels"], last["image"]
    elif fewer:
        last = max(fewer, key=lambda r: r["k"])
        scale, basis = k / last["k"], f"k={last['k']}"
    else:
        return None
    if last["status"] == "skipped":
        return dict(status="skipped", reason=f"skipped: would take > {budget_s:g} s "
                                             f"(skipped at {basis})")
    if last["status"] != "ok":
        return dict(status="skipped", reason=f"skipped: {last['status']} at {basis}")
    estimate = last["median_s"] * scale
    if estimate <= budget_s:
        return None
    return dict(status="skipped", estimate_s=estimate,
                reason=f"skipped: would take ~{estimate:.0f} s > {budget_s:g} s "
                       f"(from {basis})")


def run_suite(mode, images, methods, *, workers, seed, kf_init):
    """Every measurement of ``mode``, smallest image first: a list of result rows."""
    results = []
    n_total = len(images) * len(mode.ks) * len(methods)
    n = 0
    for image in sorted(images, key=lambda im: im.megapixels):
        for k in mode.ks:
            rows = []
            for key in methods:
                method = METHODS[key]
                row = dict(image=image.name, megapixels=image.megapixels, k=k, method=key,
                           label=method.label, image_bytes=image.nbytes)
                missing = method.missing()
                if missing:
                    row.update(status="not installed",
                               reason=f"not installed: {', '.join(missing)}")
                elif k > method.max_k:
                    row.update(status="skipped",
                               reason=f"skipped: makes at most {method.max_k} colours")
                else:
                    row.update(_skip(results, key, k, image, mode.budget_s) or {})
                rows.append(row)
            todo = [row for row in rows if "status" not in row]
            run = ("run", "--image", image.path, "--k", k, "--steps", mode.steps,
                   "--repeats", mode.repeats, "--max-seconds", mode.repeat_s, "--seed", seed,
                   "--kf-init", kf_init)
            if mode.one_worker and todo:
                outs = workers.each(*run, "--method", ",".join(r["method"] for r in todo),
                                    count=len(todo))
                for row, out in zip(todo, outs):
                    row.update(out)
            for row in rows:
                if "status" not in row:       # a process of its own, measured now
                    row.update(workers(*run, "--method", row["method"]))
                n += 1
                results.append(row)
                _log(f"[{n:3d}/{n_total}] {image.name:>14}  k={k:<4d} {row['method']:<16} "
                     + report.short(row))
    return results


def _compile(workers, mode, seed, kf_init):
    """JIT cost: once with an empty Numba cache (cold), once with the package's cache."""
    out = {}
    if mode.cold_compile:
        with tempfile.TemporaryDirectory(prefix="kmeans_fast_numba_cache_") as cache:
            out["cold"] = workers("compile", "--k", mode.ks[0], "--steps", mode.steps,
                                  "--seed", seed, "--kf-init", kf_init,
                                  env={"NUMBA_CACHE_DIR": cache})
    out["cached"] = workers("compile", "--k", mode.ks[0], "--steps", mode.steps,
                            "--seed", seed, "--kf-init", kf_init)
    for name, row in out.items():
        _log(f"numba first call, {name} cache: " + report.short_compile(row))
    return out


def _target_image(images):
    exact = [im for im in images if abs(im.megapixels - report.TARGET_MP) < 0.5]
    return exact[0] if exact else max(images, key=lambda im: im.megapixels)


def _not_run(why="not run in this mode"):
    return dict(status="skipped", reason=why)


def _busy(workers, mode, images, seed, kf_init):
    """The defaults at the largest k on the target image, quiet and with one core busy."""
    image = _target_image(images)
    k = max(mode.ks)
    out = workers("busy", "--image", image.path, "--method", "numba-defaults", "--k", k,
                  "--repeats", mode.busy_repeats, "--seed", seed, "--kf-init", kf_init)
    out.update(image_name=image.name, megapixels=image.megapixels)
    _log(f"one core busy, {image.name}, k={k}: " + report.short_busy(out))
    return out


def _e2e(workers, mode, images, work, seed):
    image = _target_image(images)
    out = workers("e2e", "--image", image.path, "--work", work,
                  "--ks", ",".join(map(str, mode.ks)), "--png-ks",
                  ",".join(map(str, mode.png_ks)), "--repeats", mode.e2e_repeats,
                  "--seed", seed, timeout_s=3600)
    out.update(image_name=image.name, megapixels=image.megapixels)
    _log(f"end to end on {image.name}: " + report.short_e2e(out))
    return out


def _commands(workers, mode, images, work, args):
    image = _target_image(images)
    files = e2e.source_files(image.path, work)
    _log(f"whole commands on {image.name} (PNG and JPEG input), "
         f"{mode.command_repeats} round(s):")
    out = commands.command_timings(files, work, ks=mode.ks, repeats=mode.command_repeats,
                                   env=workers.env, decoded_bytes=image.nbytes,
                                   jpeg_inputs="JPEG" in mode.command_inputs,
                                   no_jpeg=mode.no_jpeg, tiny_baseline=mode.name != "tiny",
                                   log=_log)
    out.update(image_name=image.name, megapixels=image.megapixels)
    memory = {}
    for mp in mode.memory_mp:
        big = generated_image(mp, work, seed=args.seed, source=args.source)
        memory[mp] = (e2e.source_files(big.path, work), big.nbytes)
    if memory:
        _log("peak memory of the command on larger photos:")
        out["memory"] = commands.peak_memory(memory, work, k=16, env=workers.env, log=_log)
    return out


def _batch(workers, mode, work, seed):
    n, width, height, sample, rounds = mode.batch
    folder = throughput.photo_set(work, n, width, height, seed=seed)
    _log(f"batch throughput: {n} photos of {width}x{height} in {folder}, "
         f"{rounds} round(s):")
    out = throughput.throughput(folder, work, k=16, repeats=rounds, loop_sample=sample,
                                env=workers.env, log=_log)
    out.update(width=width, height=height, folder=str(folder))
    _log("batch: " + report.short_batch(out))
    return out


def _kf_init_text(kf_init, seed):
    if kf_init == "shared":
        return "the shared centres (init=array)"
    return f"its own init='random', seed={seed} (k distinct colours of random pixels)"


def _csv(text, cast):
    return tuple(cast(x) for x in text.split(",") if x.strip())


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time kmeans_fast (numba, NumPy reference) against scikit-learn, OpenCV, "
                    "libimagequant and Pillow on generated photos (or yours), the whole "
                    "command against its floor and pngquant, and a batch of photos; write "
                    "RESULTS.md, results.json and a chart.")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true",
                       help="1, 4, 24 MP, k=16 and 256, runs over 6 s skipped: about 8 "
                            "minutes; writes to benchmarks/_work/quick unless --out")
    group.add_argument("--full", action="store_true",
                       help="1, 4, 24, 96 MP, k=16, 64, 256 (the default): about 45 minutes")
    group.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--images", metavar="DIR",
                   help="time your own photos (JPEG, PNG, ...) instead of the generated ones")
    p.add_argument("--sizes", type=lambda s: _csv(s, float), metavar="MP,...",
                   help=f"generated sizes, from {', '.join(f'{s:g}' for s in SIZES)}")
    p.add_argument("--k", type=lambda s: _csv(s, int), metavar="K,...", help="colour counts")
    p.add_argument("--methods", type=lambda s: _csv(s, str), metavar="NAME,...",
                   help=f"from {', '.join(METHODS)}")
    p.add_argument("--sections", type=lambda s: _csv(s, str), metavar="NAME,...",
                   help=f"what to measure, from {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--steps", type=int, help="Lloyd steps of the same-init runs (default 10)")
    p.add_argument("--repeats", type=int, help="timed runs per measurement (median reported)")
    p.add_argument("--budget", type=float, metavar="SECONDS",
                   help="skip a run estimated to take longer than this")
    p.add_argument("--threads", type=int, help="threads for every library (default: all cores)")
    p.add_argument("--kf-init", choices=("shared", "random"), default="shared",
                   help="kmeans_fast's initial centres in the same-init rows: the shared "
                        "ones every method gets (default) or its own seeded random init")
    p.add_argument("--source", choices=SOURCES, default="auto",
                   help="generated images: a bundled real photo upscaled, or "
                        "kmeans_fast.sample.sample_image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-e2e", action="store_true",
                   help="skip the end-to-end breakdown and the whole commands")
    p.add_argument("--out", help="where results go (default: benchmarks/results for a whole "
                                 "full run, benchmarks/_work/{quick,tiny,partial} otherwise)")
    p.add_argument("--work", default=str(DEFAULT_WORK), help="cache of generated images")
    p.add_argument("--from-json", metavar="FILE",
                   help="only rewrite RESULTS.md and the chart from a results.json")
    return p.parse_args(argv)


def _mode(args):
    name = "tiny" if args.tiny else "quick" if args.quick else "full"
    mode = MODES[name]
    overrides = dict(sizes=args.sizes, ks=args.k, steps=args.steps, repeats=args.repeats,
                     budget_s=args.budget, sections=args.sections)
    mode = replace(mode, **{k: v for k, v in overrides.items() if v is not None})
    if args.no_e2e:
        mode = replace(mode, sections=tuple(s for s in mode.sections
                                            if s not in ("e2e", "commands")))
    unknown = [s for s in mode.sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"--sizes {unknown}: generated sizes are {', '.join(map(str, SIZES))}")
    bad = [s for s in mode.sections if s not in SECTIONS]
    if bad:
        raise SystemExit(f"--sections {bad}: choose from {', '.join(SECTIONS)}")
    return mode


def output_folder(args, mode):
    """``--out``; else benchmarks/results for a whole full run, and under ``--work``
    otherwise: quick/, tiny/, or partial/ for a full run cut down by options."""
    if args.out:
        return Path(args.out)
    if mode.name != "full":
        return Path(args.work) / mode.name
    partial = any((args.images, args.sizes, args.k, args.methods, args.sections, args.steps,
                   args.repeats, args.budget, args.threads, args.no_e2e,
                   args.kf_init != "shared", args.source != "auto", args.seed != 0))
    return Path(args.work) / "partial" if partial else DEFAULT_OUT


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        out = Path(args.out) if args.out else Path(args.from_json).parent
        _log("\n".join(f"wrote {p}" for p in report.write(results, out)))
        return 0
    mode = _mode(args)
    out = output_folder(args, mode)
    methods = args.methods or tuple(METHODS)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"--methods {bad}: choose from {', '.join(METHODS)}")
    if "methods" not in mode.sections:
        methods = ()

    started = time.perf_counter()
    load_start = system.load_1min()
    kf_init = args.kf_init
    _log(f"mode {mode.name}; sections {', '.join(mode.sections)}; kmeans_fast init: "
         f"{kf_init}; work folder {args.work}; results to {out}")

    if args.images:
        images = user_images(args.images, args.work)
        if args.sizes:
            images += [generated_image(s, args.work, seed=args.seed, source=args.source)
                       for s in mode.sizes]
    else:
        images = [generated_image(s, args.work, seed=args.seed, source=args.source)
                  for s in mode.sizes]
    for im in images:
        _log(f"image {im.name}: {im.width}x{im.height}, {im.n_distinct:,} distinct colours "
             f"({im.source})")

    workers = Workers(threads=args.threads, timeout_s=max(300.0, 10 * mode.budget_s))
    machine = workers("machine")
    if machine.pop("status") != "ok":
        machine = system.machine()
    compile_times = _compile(workers, mode, args.seed, kf_init) if methods else {}
    runs = run_suite(mode, images, methods, workers=workers, seed=args.seed, kf_init=kf_init)
    loads = {"methods": load_start} if methods else {}
    done = {}
    for name, fn in (("busy", lambda: _busy(workers, mode, images, args.seed, kf_init)),
                     ("e2e", lambda: _e2e(workers, mode, images, args.work, args.seed)),
                     ("commands", lambda: _commands(workers, mode, images, args.work, args)),
                     ("batch", lambda: _batch(workers, mode, args.work, args.seed))):
        if name in mode.sections:
            loads[name] = system.load_1min()
            done[name] = fn()
        else:
            done[name] = _not_run()

    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    results = dict(
        suite="kmeans_fast benchmarks", format=2,
        command=f"python -m benchmarks {argv_text}".strip(),
        date=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - started,
        mode=asdict(mode), seed=args.seed, kf_init=kf_init,
        machine=machine, threads_option=args.threads,
        methods={k: dict(label=m.label, peer=m.peer, defaults=m.defaults,
                         init=m.init if (m.peer or m.defaults)
                         else _kf_init_text(kf_init, args.seed))
                 for k, m in METHODS.items() if k in methods},
        load_start=load_start, load_end=system.load_1min(),
        images=[im.to_dict() for im in images],
        loads=loads, compile=compile_times, runs=runs, **done)
    results["duration_s"] = time.perf_counter() - started
    _log("\n".join(f"wrote {p}" for p in report.write(results, out)))
    _log(f"done in {results['duration_s']:.0f} s")
    return 0
