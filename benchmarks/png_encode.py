"""PNG encoding: kmeans_fast.png against Pillow (the encoder the package used before).

``python -m benchmarks.png_encode`` paints the built-in photo-like sample at
24 MP (``sample_image(4000, 6000)``), quantizes it with ``quantize(image, k)``
for k = 16, 64 and 256, and times, interleaved (one run of each encoder in
turn, ``--repeats`` rounds, median reported):

* Pillow at zlib level 6 (``benchmarks.e2e.pillow_png``: what the CLI used before
  kmeans_fast.png);
* ``encode_png`` at its default level, the same on one thread (numba's
  thread count set to 1: packing and compression), and the other ``--levels``;
* ``encode_png(..., optimize=True)`` (oxipng), unless ``--no-optimize``;
* the streaming writer (``write_png_bands``, 256-row bands) at the default level.

It prints seconds, bytes, and both as ratios to Pillow, with the machine, the
core count and numba's thread count.  ``--alternatives`` adds the study behind
the encoder's design choices: the five PNG row filters and the adaptive
minimum-sum heuristic, and palette orders (as quantized, by luma, by
frequency), each compressed with zlib-ng at level 6 (sizes only; NumPy filters).
``--size 480x640`` makes a quick run.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time

import numba
import numpy as np

from kmeans_fast import io as kio
from kmeans_fast import png, quantize
from kmeans_fast.sample import sample_image


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _bands(labels, rows):
    for start in range(0, labels.shape[0], rows):
        yield labels[start:start + rows]


def _stream(palette, labels):
    out = io.BytesIO()
    png.write_png_bands(out, palette, labels.shape[0], labels.shape[1], _bands(labels, 256))
    return out.getvalue()


def _one_thread(palette, labels):
    saved = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return png.encode_png(palette, labels)
    finally:
        numba.set_num_threads(saved)


def encoders(levels, optimize):
    """{name: fn(palette, labels) -> bytes}, Pillow first (the reference)."""
    from .e2e import pillow_png
    found = {"Pillow level 6": lambda p, l: pillow_png(p, l, level=6)}
    default = png.DEFAULT_LEVEL
    found[f"encode_png default (level {default})"] = lambda p, l: png.encode_png(p, l)
    if numba.get_num_threads() > 1:
        found["encode_png default, 1 thread"] = _one_thread
    for level in levels:
        if level != default:
            found[f"encode_png level {level}"] = lambda p, l, v=level: png.encode_png(p, l, level=v)
    found["write_png_bands, 256-row bands"] = _stream
    if optimize:
        found["encode_png optimize=True"] = lambda p, l: png.encode_png(p, l, optimize=True)
    return found


def measure(palette, labels, fns, repeats):
    """Median seconds and bytes of each encoder, runs interleaved."""
    times = {name: [] for name in fns}
    sizes = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds, data = _timed(lambda: fn(palette, labels))
            times[name].append(seconds)
            sizes[name] = len(data)
    return {name: (statistics.median(times[name]), sizes[name]) for name in fns}


# --------------------------------------------------------------------------
# the design study: row filters and palette orders (sizes only)
# --------------------------------------------------------------------------
def _filtered(rows, kind):
    """PNG filter ``kind`` (0-4) of (H, n) bytes with 1 byte per pixel; uint8."""
    prev = np.vstack([np.zeros((1, rows.shape[1]), np.uint8), rows[:-1]])
    left = np.hstack([np.zeros((rows.shape[0], 1), np.uint8), rows[:, :-1]])
    if kind == 0:
        return rows
    if kind == 1:
        return rows - left
    if kind == 2:
        return rows - prev
    if kind == 3:
        return rows - ((left.astype(np.int16) + prev) >> 1).astype(np.uint8)
    upper_left = np.hstack([np.zeros((rows.shape[0], 1), np.uint8), prev[:, :-1]])
    a, b, c = (x.astype(np.int16) for x in (left, prev, upper_left))
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)).astype(np.uint8)
    return rows - pred


def _deflated_size(rows, kinds):
    """zlib-ng level 6 size of the scanlines, filter ``kinds[r]`` on row r."""
    from zlib_ng import zlib_ng
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = kinds
    for kind in np.unique(kinds):
        pick = kinds == kind
        out[pick, 1:] = _filtered(rows, int(kind))[pick]
    return len(zlib_ng.compress(out.tobytes(), 6))


def alternatives(palette, labels):
    """{(order, filter): zlib-ng level 6 bytes} of the indexed scanlines."""
    k = len(palette)
    bits = kio.palette_bit_depth(k)
    luma = palette[:, :3].astype(np.float64) @ [0.299, 0.587, 0.114] if palette.shape[1] >= 3 \
        else palette[:, 0].astype(np.float64)
    counts = np.bincount(labels.ravel(), minlength=k)
    orders = {"as quantized": np.arange(k), "by luma": np.argsort(luma, kind="stable"),
              "by frequency": np.argsort(-counts, kind="stable")}
    found = {}
    for order_name, order in orders.items():
        rank = np.empty(k, np.int64)
        rank[order] = np.arange(k)
        relabelled = rank[labels].astype(np.uint8)
        planes = np.unpackbits(relabelled[:, :, None], axis=2)[:, :, 8 - bits:]
        rows = np.packbits(planes.reshape(labels.shape[0], -1), axis=1)
        height = rows.shape[0]
        for kind, name in enumerate(("None", "Sub", "Up", "Average", "Paeth")):
            found[order_name, name] = _deflated_size(rows, np.full(height, kind))
        # libpng's (and Pillow's) heuristic: per row, the least sum of |signed byte|
        sums = []
        for kind in range(5):
            f = _filtered(rows, kind).astype(np.int16)
            sums.append(np.minimum(f, 256 - f).sum(axis=1))
        found[order_name, "adaptive min-sum"] = _deflated_size(rows, np.argmin(sums, axis=0))
    return found


# --------------------------------------------------------------------------
def _parse_size(text):
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def _machine():
    from benchmarks.system import cpu_model, usable_cores
    return (f"{cpu_model()}, {usable_cores()} usable cores, {platform.system()}; "
            f"numba threads {numba.get_num_threads()} (compression threads: the same)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.png_encode",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=_parse_size, default=(4000, 6000),
                        help="HEIGHTxWIDTH of the sample image (default 4000x6000, 24 MP)")
    parser.add_argument("--k", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3, 6, 9])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--steps", type=int, default=10, help="Lloyd steps of quantize")
    parser.add_argument("--no-optimize", dest="optimize", action="store_false",
                        help="leave out optimize=True (oxipng: seconds per image)")
    parser.add_argument("--alternatives", action="store_true",
                        help="also print the row-filter and palette-order study")
    args = parser.parse_args(argv)

    height, width = args.size
    print(f"PNG encoding, {height}x{width} sample image ({height * width / 1e6:.1f} MP); "
          f"median of {args.repeats} interleaved runs")
    print(_machine())
    image = sample_image(height, width)
    fns = encoders(args.levels, args.optimize)
    warm = quantize(image[:32, :32], 4, steps=1, seed=0)
    for fn in fns.values():                 # JIT (cache load) and first-call costs
        fn(warm.palette, warm.labels)

    for k in args.k:
        q = quantize(image, k, steps=args.steps, seed=0)
        palette, labels = q.palette, q.labels
        results = measure(palette, labels, fns, args.repeats)
        ref_time, ref_size = next(iter(results.values()))
        print(f"\nk={k} ({len(palette)} colours, {labels.dtype} labels)")
        print(f"  {'encoder':38s} {'seconds':>8s} {'bytes':>11s} {'size/Pillow':>12s} "
              f"{'speed x Pillow':>15s}")
        for name, (seconds, size) in results.items():
            print(f"  {name:38s} {seconds:8.3f} {size:11,d} {size / ref_size:12.4f} "
                  f"{ref_time / seconds:15.2f}")
        if args.alternatives and len(palette) <= kio.PALETTE_MAX:
            found = alternatives(palette, labels)
            base = found["as quantized", "None"]
            print("  design study: zlib-ng level 6 bytes, relative to filter None as quantized")
            for (order, name), size in found.items():
                print(f"    {order:13s} filter {name:17s} {size:11,d} {size / base:8.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
