"""One measurement in a fresh process; prints one JSON line on stdout.

    python -m benchmarks.worker run --image IMG.npy --method numba-auto --k 16 --steps 10
    python -m benchmarks.worker run --image IMG.npy --method numba-auto,sklearn --k 16
    python -m benchmarks.worker busy --image IMG.npy --method numba-defaults --k 256
    python -m benchmarks.worker compile --k 16 --steps 10   # JIT compile, as run
    python -m benchmarks.worker e2e --image IMG.npy --work DIR --ks 16,256 --png-ks 16,64,256
    python -m benchmarks.worker machine                     # CPU, threads, versions

A fresh process per measurement makes the peak RSS the method's own: the worker
loads the image, warms the method up on a small crop (so JIT compilation and
first-call set-up are not timed; their cost is reported as ``first_call_s -
warm_call_s``), notes its RSS, resets the peak, then runs the method
``--repeats`` times (fewer when they would take over ``--max-seconds``).
"Added memory" is the peak RSS minus that RSS.  Several ``--method`` (the tiny
run) are measured one after the other, one JSON line each.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys

import numpy as np

from . import system
from .images import shared_centres
from .measure import BUSY_LOOP, busy_loop, psnr, timed
from .methods import METHODS, WARMUP_SIDE, warm_up


def measure(args):
    method = METHODS[args.method]
    image = np.load(args.image)
    first, second = warm_up(method, image, args.k, args.steps, args.seed, args.kf_init)
    centres = shared_centres(image, args.k, args.seed)
    gc.collect()
    baseline = system.rss_bytes()
    exact_peak = system.reset_peak_rss()

    run = method.prepare(image, args.k, args.steps, centres, args.seed,
                         kf_init=args.kf_init)
    times, phases = [], []
    outcome = None
    while len(times) < args.repeats:
        outcome = None
        seconds, outcome = timed(run)
        times.append(seconds)
        if outcome.phases:
            phases.append(outcome.phases)
        if sum(times) + seconds > args.max_seconds:  # one more would overrun
            break
    peak = system.peak_rss_bytes()
    del run
    quantized = outcome.quantized()
    db, psnr_by = psnr(image, quantized)
    return dict(
        kind="run", method=method.key, k=args.k, steps=args.steps, repeats=args.repeats,
        times_s=times, median_s=statistics.median(times), min_s=min(times),
        steps_run=outcome.steps_run, path=outcome.path,
        first_call_s=first, warm_call_s=second, first_call_overhead_s=max(0.0, first - second),
        rss_after_load_bytes=baseline, peak_rss_bytes=peak,
        added_bytes=max(0, peak - baseline), peak_reset=exact_peak,
        image_bytes=image.nbytes, psnr_db=db, psnr_by=psnr_by,
        threads=method.threads(),
        kf_init=args.kf_init if not (method.peer or method.defaults) else None,
        phases={name: statistics.median(p[name] for p in phases) for name in phases[0]}
        if phases else None,
    )


def busy_core(args):
    """The method quiet and with one core kept busy by another process, interleaved.

    Each round times one quiet run, then starts ``python -c "while 1: pass"``,
    lets it get going, times one run, and ends it.
    """
    method = METHODS[args.method]
    image = np.load(args.image)
    warm_up(method, image, args.k, args.steps, args.seed, args.kf_init)
    centres = shared_centres(image, args.k, args.seed)
    run = method.prepare(image, args.k, args.steps, centres, args.seed, kf_init=args.kf_init)
    quiet, busy = [], []
    for _ in range(args.repeats):
        quiet.append(timed(run)[0])
        with busy_loop():
            busy.append(timed(run)[0])
        gc.collect()
    return dict(kind="busy", method=method.key, k=args.k, quiet_s=quiet, busy_s=busy,
                quiet_median_s=statistics.median(quiet), busy_median_s=statistics.median(busy),
                ratio=statistics.median(busy) / statistics.median(quiet),
                threads=method.threads(), busy_process=" ".join(BUSY_LOOP))


def compile_times(args):
    """First and second call of both numba paths on a small synthetic image.  Run
    with NUMBA_CACHE_DIR pointing at an empty folder, the difference is the cold
    JIT compile; with the package's warm cache, it is the cache load."""
    import_s, _ = timed(__import__, "kmeans_fast")
    rng = np.random.default_rng(args.seed)
    image = rng.integers(0, 256, (WARMUP_SIDE, WARMUP_SIDE, 3), dtype=np.uint8)
    first, second = warm_up(METHODS["numba-auto"], image, args.k, args.steps, args.seed,
                            args.kf_init)
    return dict(kind="compile", k=args.k, import_s=import_s, first_call_s=first,
                warm_call_s=second, compile_s=max(0.0, first - second))


def _set_threads(n):
    """Numba and OpenCV threads (OpenMP/BLAS follow OMP_NUM_THREADS, set by the runner)."""
    import numba
    numba.set_num_threads(n)
    try:
        import cv2
        cv2.setNumThreads(n)
    except ImportError:
        pass


def _methods(text):
    keys = [k for k in text.split(",") if k]
    bad = [k for k in keys if k not in METHODS]
    if bad or not keys:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(sorted(METHODS))}")
    return keys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("kind", choices=("run", "busy", "compile", "e2e", "machine"))
    parser.add_argument("--image")
    parser.add_argument("--method", type=_methods, help="one method, or several: a,b,...")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=math.inf,
                        help="stop repeating when one more run would pass this total")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kf-init", choices=("shared", "random"), default="random")
    parser.add_argument("--work")
    parser.add_argument("--ks", help="e2e: colour counts, comma-separated")
    parser.add_argument("--png-ks", help="e2e: colour counts of the PNG encoder study")
    parser.add_argument("--no-optimize", action="store_true",
                        help="e2e: leave out the optimizer (oxipng)")
    parser.add_argument("--threads", type=int, help="numba and OpenCV threads")
    args = parser.parse_args(argv)
    if args.threads:
        _set_threads(args.threads)
    if args.kind == "run":      # one JSON line per method, each as soon as it is measured
        for method in args.method:
            row = measure(argparse.Namespace(**{**vars(args), "method": method}))
            sys.stdout.write(json.dumps(row) + "\n")
            sys.stdout.flush()
        return
    if args.kind == "busy":
        if len(args.method) != 1:
            parser.error("busy: one --method")
        out = busy_core(argparse.Namespace(**{**vars(args), "method": args.method[0]}))
    elif args.kind == "compile":
        out = compile_times(args)
    elif args.kind == "machine":  # the thread settings the workers see
        out = system.machine()
    else:
        from .e2e import end_to_end
        def ints(text):
            return [int(v) for v in text.split(",")] if text else [args.k]
        out = end_to_end(args.image, args.work, ks=ints(args.ks), repeats=args.repeats,
                         seed=args.seed, png_ks=ints(args.png_ks),
                         optimize=not args.no_optimize)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
