"""A gigapixel image, larger than any worker's memory, quantized on a Dask cluster.

    python -m benchmarks.gigapixel               # 1 GP, 40000 x 25000, k = 16 -> results/
    python -m benchmarks.gigapixel --size 0.05   # a quick check -> benchmarks/_work/gigapixel/

What runs, stage by stage, on a ``distributed.LocalCluster`` (2 worker
processes of 1 thread, each with a memory limit of 1.5 GB):

1. **generate** (cached): a photo-like RGB image -- a real photo bundled with
   scikit-image (``coffee()``, 600x400; ``kmeans_fast.sample.sample_image``
   without it) upscaled bicubically to the full size, plus Gaussian sensor
   noise seeded per tile -- painted tile by tile by the workers and stored
   tiled in a Zarr array (1024x1024x3 tiles, zstd) under
   ``benchmarks/_work/gigapixel/``.  Nothing ever holds the whole image.
2. **histogram + fit**: :func:`kmeans_fast.dask.quantize_dask` on the Zarr
   array read in 2048x4096 chunks: a histogram per chunk on the workers, a
   tree sum, exact k-means on the sum in this process.
3. **PNG**: :func:`kmeans_fast.dask.write_png` computes the labels one row of
   chunks at a time on the workers (two rows ahead) and streams them into
   :class:`kmeans_fast.png.PngWriter` here; the label array is never whole.
4. **verify**: the PNG is decoded as a stream (its IDAT chunks through
   ``zlib.decompressobj``, a band of rows at a time, CRCs checked) and every
   band's colours are compared with ``palette[labels]``, the labels computed
   again band by band on the cluster.

Each stage reports its wall time and the peak memory (VmHWM, reset with
``/proc/self/clear_refs`` at the start of the stage) of every worker process
and of this process.  Only the full-size run writes
``benchmarks/results/gigapixel.md``; other sizes write under
``benchmarks/_work/gigapixel/`` unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import shutil
import struct
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .system import cpu_model, total_memory_bytes, versions
from .system import peak_rss_bytes as peak_rss, reset_peak_rss   # run on every worker too

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "gigapixel"
RESULTS = HERE / "results"

GENERATOR_VERSION = 1       # bump when the generated image changes
FULL_SIZE = 1.0             # gigapixels of the run that writes benchmarks/results/
ASPECT = 1.6                # width / height: 40000 x 25000 at 1 GP
TILE = 1024                 # Zarr tile side (stored chunks), and the generation task
CHUNKS = (2048, 4096)       # rows, columns of the chunks quantize_dask reads
K = 16
WORKERS = 2
MEMORY_LIMIT = "1.5GB"      # per worker (distributed: 1.5e9 bytes)
NOISE_SIGMA = 1.5           # sensor noise, 8-bit levels (as benchmarks.images)
PNG_LEVEL = 5               # kmeans_fast.io.PNG_LEVEL (the command's default)
MB = 1e6


def image_size(gigapixels):
    """(height, width) of a 1.6:1 image of about ``gigapixels`` * 1e9 pixels."""
    height = max(1, round(math.sqrt(gigapixels * 1e9 / ASPECT)))
    return height, max(1, round(height * ASPECT))


# --------------------------------------------------------------------------
# 1. the image, tiled on disk
# --------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def source_photo():
    """(name, (h, w, 3) uint8) of the photo that is upscaled (the same in every process)."""
    try:
        from benchmarks.images import source_photo as bundled
        found = bundled()
    except ImportError:
        found = None
    if found is not None:
        return found
    from kmeans_fast.sample import sample_image
    return "kmeans_fast.sample.sample_image(400, 600)", sample_image(400, 600)


def paint_tile(block_info=None, *, height, width, seed, sigma):
    """One tile of the image: the photo upscaled bicubically to height x width
    (destination pixel centres mapped as ``cv2.resize`` maps them), plus
    noise from a generator seeded by (seed, tile row, tile column)."""
    import cv2
    cv2.setNumThreads(1)
    (y0, y1), (x0, x1), _ = block_info[None]["array-location"]
    photo = source_photo()[1]
    sx, sy = photo.shape[1] / width, photo.shape[0] / height
    m = np.array([[sx, 0.0, (x0 + 0.5) * sx - 0.5], [0.0, sy, (y0 + 0.5) * sy - 0.5]])
    tile = cv2.warpAffine(photo, m, (x1 - x0, y1 - y0),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    rng = np.random.default_rng([seed, y0, x0])
    tile += rng.standard_normal(tile.shape, dtype=np.float32) * np.float32(sigma)
    np.rint(tile, out=tile)
    np.clip(tile, 0, 255, out=tile)
    return tile.astype(np.uint8)


def lazy_image(height, width, *, tile=TILE, seed=0, sigma=NOISE_SIGMA):
    """The image as a dask array of (tile, tile, 3) blocks, each painted when computed."""
    import dask.array as da
    chunks = tuple(tuple(min(tile, n - s) for s in range(0, n, tile)) for n in (height, width))
    return da.map_blocks(paint_tile, chunks=chunks + ((3,),), dtype=np.uint8,
                         meta=np.empty((0, 0, 0), np.uint8), height=height, width=width,
                         seed=seed, sigma=sigma, token="paint")


def cached_image(work, height, width, *, tile=TILE, seed=0, sigma=NOISE_SIGMA):
    """(path of the Zarr array, its description, whether it was there already).

    Painted by the active Dask client into ``<name>.zarr.tmp``, which is
    renamed once complete: a stopped run leaves nothing that looks finished.
    """
    import dask.array as da
    import zarr

    name = f"photo_{width}x{height}_t{tile}_s{seed}_n{sigma:g}_v{GENERATOR_VERSION}"
    path = Path(work) / f"{name}.zarr"
    meta_path = Path(work) / f"{name}.json"
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text()), True
    Path(work).mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".zarr.tmp")
    shutil.rmtree(temp, ignore_errors=True)
    stored = zarr.create_array(store=str(temp), shape=(height, width, 3), dtype="uint8",
                               chunks=(tile, tile, 3))
    da.store(lazy_image(height, width, tile=tile, seed=seed, sigma=sigma), stored, lock=False)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(temp, path)
    meta = {"photo": source_photo()[0], "height": height, "width": width, "tile": tile,
            "seed": seed, "noise_sigma": sigma, "stored_bytes": _folder_bytes(path)}
    meta_path.write_text(json.dumps(meta, indent=1))
    return path, meta, False


def _folder_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# --------------------------------------------------------------------------
# memory and stages
# --------------------------------------------------------------------------
class Stages:
    """Times each stage and records the peak memory of every worker and of this process."""

    def __init__(self, client):
        self.client = client
        self.records = {}
        self.workers = sorted(client.scheduler_info()["workers"])

    @contextlib.contextmanager
    def stage(self, name):
        record = {}
        resets = self.client.run(reset_peak_rss)
        record["peak_reset"] = bool(all(resets.values()) and reset_peak_rss())
        started = time.perf_counter()
        yield record
        record["seconds"] = time.perf_counter() - started
        peaks = self.client.run(peak_rss)
        record["peak_workers"] = [peaks.get(w) for w in self.workers]
        record["peak_client"] = peak_rss()
        self.records[name] = record

    def restarted(self):
        """Whether any worker was replaced (a nanny restarts a worker over its memory limit)."""
        return sorted(self.client.scheduler_info()["workers"]) != self.workers


# --------------------------------------------------------------------------
# 4. streaming PNG decoder
# --------------------------------------------------------------------------
class PngStream:
    """Decode an indexed PNG a band of rows at a time, never holding it whole.

    Reads the file chunk by chunk (checking every CRC), inflates the IDAT
    data with ``zlib.decompressobj`` no further than the rows asked for, and
    unpacks 1/2/4/8-bit indices.  Only filter type 0 (None) is decoded: the
    one :mod:`kmeans_fast.png` writes.
    """

    def __init__(self, f):
        self.f = f
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            raise ValueError("not a PNG file")
        kind, data = self._chunk()
        if kind != b"IHDR":
            raise ValueError("IHDR is not the first chunk")
        (self.width, self.height, self.bits, colour_type, _, _, interlace
         ) = struct.unpack(">IIBBBBB", data)
        if colour_type != 3 or interlace != 0:
            raise ValueError(f"colour type {colour_type}, interlace {interlace}: "
                             "this decoder reads non-interlaced indexed PNGs only")
        self.alpha = None
        while True:
            kind, data = self._chunk()
            if kind == b"PLTE":
                self.plte = np.frombuffer(data, np.uint8).reshape(-1, 3)
            elif kind == b"tRNS":
                self.alpha = np.frombuffer(data, np.uint8)
            elif kind == b"IDAT":
                self._pending = data
                break
        self.row_bytes = 1 + (self.width * self.bits + 7) // 8
        self.inflate = zlib.decompressobj()
        self.buffer = bytearray()
        self.rows_read = 0
        self.ended = False

    def _chunk(self):
        head = self.f.read(8)
        if len(head) != 8:
            raise ValueError("the file ends before IEND")
        n, kind = struct.unpack(">I4s", head)
        data = self.f.read(n)
        (crc,) = struct.unpack(">I", self.f.read(4))
        if zlib.crc32(data, zlib.crc32(kind)) != crc:
            raise ValueError(f"bad CRC in a {kind.decode()} chunk")
        return kind, data

    def _next_idat(self):
        if self._pending is not None:
            data, self._pending = self._pending, None
            return data
        kind, data = self._chunk()
        if kind != b"IDAT":
            raise ValueError(f"{kind.decode()} before the image data ended")
        return data

    def _inflate(self, nbytes):
        while len(self.buffer) < nbytes:
            data = self.inflate.unconsumed_tail or self._next_idat()
            self.buffer += self.inflate.decompress(data, nbytes - len(self.buffer))

    def colours(self):
        """(k, 4) uint8: RGBA of each PLTE index (tRNS alpha, 255 beyond it)."""
        rgba = np.full((len(self.plte), 4), 255, np.uint8)
        rgba[:, :3] = self.plte
        if self.alpha is not None:
            rgba[: len(self.alpha), 3] = self.alpha
        return rgba

    def rows(self, n):
        """The next n rows of palette indices, (n, width) uint8."""
        if self.rows_read + n > self.height:
            raise ValueError(f"rows {self.rows_read}+{n} pass the height {self.height}")
        nbytes = n * self.row_bytes
        self._inflate(nbytes)
        lines = np.frombuffer(bytes(self.buffer[:nbytes]), np.uint8).reshape(n, self.row_bytes)
        del self.buffer[:nbytes]
        if n and lines[:, 0].any():
            raise ValueError("a row uses a filter other than None (type 0)")
        self.rows_read += n
        packed = lines[:, 1:]
        if self.bits == 8:
            return packed[:, : self.width]
        shifts = np.arange(8 - self.bits, -1, -self.bits, dtype=np.uint8)   # high bits first
        out = (packed[:, :, None] >> shifts) & np.uint8((1 << self.bits) - 1)
        return out.reshape(n, -1)[:, : self.width]

    def finish(self):
        """Check the data ends where the image does, then IEND."""
        tail = self.inflate.unconsumed_tail + self.inflate.flush()
        while not self.inflate.eof:
            tail += self.inflate.decompress(self._next_idat())
        if self.buffer or tail or self.inflate.unused_data:
            raise ValueError("image data continues past the last row")
        kind, _ = self._chunk()
        while kind == b"IDAT":      # empty IDATs are allowed
            kind, _ = self._chunk()
        if kind != b"IEND":
            raise ValueError(f"{kind.decode()} where IEND was expected")


def verify_png(path, palette, labels, *, ahead=2):
    """Check, band by band, that the PNG at ``path`` decodes to ``palette[labels]``.

    ``labels`` is a dask array: each band is computed again (on the cluster)
    as it is compared.  Returns the number of rows checked; raises ValueError
    at the first difference.
    """
    from kmeans_fast.dask import label_bands

    palette = np.asarray(palette, np.uint8)
    want = np.full((len(palette), 4), 255, np.uint8)
    if palette.shape[1] == 1:
        want[:, :3] = palette
    else:
        want[:, : palette.shape[1]] = palette
    with open(path, "rb") as f:
        png = PngStream(f)
        if (png.height, png.width) != labels.shape:
            raise ValueError(f"the PNG is {png.width} x {png.height}, the labels "
                             f"{labels.shape[1]} x {labels.shape[0]}")
        got = png.colours()
        same = (got[:, None, :] == want[None, :, :]).all(axis=2)   # PLTE index x label
        for band in label_bands(labels, ahead=ahead):
            start = png.rows_read
            ok = same[png.rows(len(band)), band]
            if not ok.all():
                y, x = np.argwhere(~ok)[0]
                raise ValueError(f"pixel ({start + y}, {x}) of the PNG is not palette[label]")
        png.finish()
    return png.rows_read


# --------------------------------------------------------------------------
# the demo
# --------------------------------------------------------------------------
def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _versions():
    return versions(("kmeans_fast", "numpy", "numba", "dask", "distributed", "zarr",
                     "opencv-python-headless", "zlib-ng"))


@contextlib.contextmanager
def _cluster(client, workers, memory_limit):
    if client is not None:
        yield client
        return
    import logging

    import distributed
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  memory_limit=memory_limit, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as own:
        yield own


def run_demo(*, height, width, k=K, tile=TILE, chunks=CHUNKS, seed=0, work=WORK,
             client=None, workers=WORKERS, memory_limit=MEMORY_LIMIT, level=PNG_LEVEL,
             keep_png=False, say=None):
    """Run the four stages; a dict of everything measured (see :func:`report_markdown`).

    ``client``: a distributed client to use (its cluster as it is); None starts
    a LocalCluster of ``workers`` single-threaded processes with ``memory_limit``
    each, closed at the end.
    """
    import dask.array as da
    from kmeans_fast.dask import quantize_dask, write_png

    say = say or (lambda text: None)
    work = Path(work)
    result = {"height": height, "width": width, "megapixels": height * width / 1e6, "k": k,
              "tile": tile, "chunks": list(chunks), "seed": seed, "png_level": level,
              "load_start": _load(), "date": datetime.now(timezone.utc).isoformat(
                  timespec="seconds"), "client_numba_threads": None}
    with _cluster(client, workers, memory_limit) as c:
        import numba
        info = c.scheduler_info()["workers"]
        n_workers = len(info)
        result["workers"] = n_workers
        result["worker_threads"] = sorted({w["nthreads"] for w in info.values()})
        limits = {w.get("memory_limit") for w in info.values()}
        result["memory_limit"] = max(limits) if limits and None not in limits else None
        result["client_numba_threads"] = numba.get_num_threads()
        threads = max(1, (os.cpu_count() or 1) // n_workers)
        result["worker_numba_threads"] = threads
        stages = Stages(c)

        say(f"generating {width} x {height} ({height * width / 1e9:.3g} GP) into {work}")
        with stages.stage("generate") as record:
            path, meta, cached = cached_image(work, height, width, tile=tile, seed=seed)
            record["cached"] = cached
        result["image"] = meta
        image = da.from_zarr(str(path), chunks=tuple(chunks) + (3,))
        result["n_chunks"] = int(np.prod(image.numblocks))

        say(f"histograms of {result['n_chunks']} chunks, tree sum, k-means (k={k})")
        with stages.stage("histogram + fit") as record:
            q = quantize_dask(image, k, seed=seed, numba_threads=threads)
            record.update(q.seconds)
        result.update(n_distinct=q.n_distinct, psnr=q.psnr, steps_run=q.steps_run,
                      converged=q.converged, palette=q.palette.tolist())

        png_path = work / f"gigapixel_{width}x{height}_k{k}.png"
        say(f"labels band by band -> {png_path}")
        with stages.stage("PNG") as record:
            result["png_bytes"] = write_png(png_path, q.palette, q.labels, level=level)
        result["bits_per_pixel"] = 8 * result["png_bytes"] / (height * width)

        say("stream-decoding the PNG against the labels, band by band")
        with stages.stage("verify"):
            result["verified_rows"] = verify_png(png_path, q.palette, q.labels)
        if not keep_png:
            png_path.unlink()
        result["png_kept"] = str(png_path) if keep_png else None
        result["workers_restarted"] = stages.restarted()
        result["stages"] = stages.records
    result["load_end"] = _load()
    memory = total_memory_bytes()
    result["machine"] = {"cpu": cpu_model(), "cores": os.cpu_count(),
                         "memory_gb": memory / 1e9 if memory else None,
                         "versions": _versions()}
    return result


def _mb(value):
    return "-" if value is None else f"{value / MB:,.0f} MB"


def report_markdown(r):
    """The results as Markdown."""
    stages = r["stages"]
    n_workers = r["workers"]
    limit = r["memory_limit"]
    peak_all = max((p for s in stages.values() for p in s["peak_workers"] if p), default=0)
    lines = [
        "# Gigapixel demo: quantize_dask on a LocalCluster",
        "",
        f"Generated by `python -m benchmarks.gigapixel` on {r['date']}.",
        "",
        f"- image: {r['width']} x {r['height']} RGB ({r['megapixels'] / 1000:.3g} GP, "
        f"{r['height'] * r['width'] * 3 / 1e9:.2f} GB of pixels), {r['image']['photo']} "
        f"upscaled bicubically with noise sigma {r['image']['noise_sigma']:g}, stored as "
        f"Zarr {r['tile']}x{r['tile']}x3 tiles (zstd, "
        f"{r['image']['stored_bytes'] / 1e9:.2f} GB on disk); read in "
        f"{r['chunks'][0]}x{r['chunks'][1]} chunks ({r['n_chunks']} chunks)",
        f"- k = {r['k']}, seed {r['seed']}: {r['n_distinct']:,} distinct colours, PSNR "
        f"{r['psnr']:.2f} dB, {r['steps_run']} Lloyd steps"
        f"{' (converged)' if r['converged'] else ''}",
        f"- PNG: {r['png_bytes']:,} bytes ({r['bits_per_pixel']:.2f} bits per pixel, level "
        f"{r['png_level']}); decoded as a stream, {r['verified_rows']:,} of {r['height']:,} "
        "rows equal palette[labels]",
        f"- cluster: {n_workers} worker processes x {'/'.join(map(str, r['worker_threads']))} "
        f"thread, memory limit {_mb(limit)} each; Numba threads: "
        f"{r['worker_numba_threads']} per worker task, {r['client_numba_threads']} here; "
        f"workers restarted: {'yes' if r['workers_restarted'] else 'no'}",
        f"- machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, "
        f"{r['machine']['memory_gb']:.1f} GB; load average {r['load_start']} at the start, "
        f"{r['load_end']} at the end (shared machine)",
        f"- versions: {', '.join(f'{k} {v}' for k, v in r['machine']['versions'].items())}",
        "",
        "| stage | seconds | " + " | ".join(f"peak memory worker {i + 1}"
                                             for i in range(n_workers))
        + " | peak memory here (client) |",
        "|---|---:|" + "---:|" * n_workers + "---:|",
    ]
    for name, s in stages.items():
        seconds = f"{s['seconds']:.1f}"
        if name == "generate" and s.get("cached"):
            seconds += " (cached)"
        if "histogram" in s:
            seconds += f" ({s['histogram']:.1f} + {s['fit']:.1f})"
        lines.append(f"| {name} | {seconds} | "
                     + " | ".join(_mb(p) for p in s["peak_workers"])
                     + f" | {_mb(s['peak_client'])} |")
    total = sum(s["seconds"] for n, s in stages.items() if n != "generate")
    quantize_and_write = stages["histogram + fit"]["seconds"] + stages["PNG"]["seconds"]
    lines += [
        "",
        f"Quantize + write the PNG: {quantize_and_write:.1f} s; "
        f"all stages but generation: {total:.1f} s.  Highest peak of any worker: "
        f"{_mb(peak_all)}" + (f" (limit {_mb(limit)})." if limit else "."),
        "",
        "Peak memory is each process's VmHWM, reset at the start of every stage "
        "(`/proc/self/clear_refs`)" + ("" if all(s["peak_reset"] for s in stages.values())
                                       else "; the reset failed, so peaks are since start")
        + ".  The worker processes' peaks include the Python interpreter, NumPy, Numba, "
        "Dask and the libraries they load (about 200-300 MB each).  \"histogram + fit\" "
        "splits as (histogram: read every chunk, its histogram, the tree sum; fit: "
        "k-means here).  \"PNG\" includes computing every label on the workers (read, "
        "remap) and compressing here; \"verify\" computes the labels again.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gigapixel",
        description="Quantize a generated gigapixel image with quantize_dask on a "
                    "LocalCluster; time and peak memory per stage.")
    parser.add_argument("--size", type=float, default=FULL_SIZE, metavar="GP",
                        help=f"gigapixels (default {FULL_SIZE:g}: 40000 x 25000)")
    parser.add_argument("--k", type=int, default=K)
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--memory-limit", default=MEMORY_LIMIT, help="per worker")
    parser.add_argument("--tile", type=int, default=TILE)
    parser.add_argument("--chunks", type=int, nargs=2, default=CHUNKS, metavar=("ROWS", "COLS"))
    parser.add_argument("--level", type=int, default=PNG_LEVEL, help="PNG level 0-9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=WORK, help="cache folder")
    parser.add_argument("--out", type=Path, help="folder for gigapixel.md (default: "
                        "benchmarks/results for the full size, the work folder otherwise)")
    parser.add_argument("--keep-png", action="store_true", help="keep the PNG in --work")
    args = parser.parse_args(argv)
    if args.size <= 0:
        parser.error(f"--size {args.size} must be > 0")
    height, width = image_size(args.size)
    out = args.out or (RESULTS if args.size == FULL_SIZE else args.work)

    def say(text):
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    result = run_demo(height=height, width=width, k=args.k, tile=args.tile,
                      chunks=tuple(args.chunks), seed=args.seed, work=args.work,
                      workers=args.workers, memory_limit=args.memory_limit,
                      level=args.level, keep_png=args.keep_png, say=say)
    text = report_markdown(result)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gigapixel.md").write_text(text)
    print(text)
    say(f"wrote {out / 'gigapixel.md'}")
    return 0


if __name__ == "__main__":
    # run the module under its package name, so that the workers import the
    # task functions from benchmarks.gigapixel instead of unpickling copies
    from benchmarks.gigapixel import main as _main
    raise SystemExit(_main())
