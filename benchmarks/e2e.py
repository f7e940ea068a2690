"""What ``kmeans-fast compress`` does with one photo, stage by stage, in process.

The run is the package's own pipeline, :func:`kmeans_fast.pipeline.compress_file`
at the command's defaults (:class:`kmeans_fast.pipeline.Options`), on the photo
stored as a JPEG and as a PNG.  The stages are timed from the pipeline's own
``progress`` messages (each marks the start of a stage) and its report: read
(``report["input"]["seconds"]``), quantize, PNG encode, JPEG encode
(``report["jpeg"]["seconds"]``) and the JPEG decode for its measures (the rest
of that stage), measures, write.  Nothing of the pipeline is re-implemented
here, so a change to it shows in these numbers.

Then the PNG encoder on the labels of ``quantize(image, k)``: Pillow at zlib
level 6 against ``kmeans_fast.png.encode_png`` at its default, interleaved
(:func:`benchmarks.png_encode.measure`), and ``optimize=True`` (oxipng) for the
size it saves.  Runs inside a worker (``python -m benchmarks.worker e2e``).
"""

from __future__ import annotations

import io
import os
import statistics
import time
from pathlib import Path

import numpy as np

JPEG_QUALITY = 95          # the inputs' quality (a camera's "fine" setting)

# pipeline progress messages (their start) -> the stage they begin
STAGE_OF_MESSAGE = (("k-means", "quantize"), ("encoding the PNG", "PNG encode"),
                    ("encoding the JPEG", "JPEG encode + decode"), ("measuring", "measures"),
                    ("writing", "write"))
STAGES = ("read", "quantize", "PNG encode", "JPEG encode", "JPEG decode", "measures", "write")
STAGE_BY = {
    "read": "kmeans_fast.io.read_image (file bytes, OpenCV decode)",
    "quantize": "quantize(image, k): histogram, k-means++, Lloyd steps, labels",
    "PNG encode": "kmeans_fast.png.encode_png via io.png_bytes (zlib-ng, default level)",
    "JPEG encode": "kmeans_fast.io.encode_jpeg of the original (quality 95)",
    "JPEG decode": "kmeans_fast.io.decode_image of that JPEG, once, for its measures",
    "measures": "kmeans_fast.metrics.quality: PSNR + SSIM of palette+labels and the JPEG",
    "write": "kmeans_fast.io.write_files: both files, atomic (fsync)",
}


def source_files(image_path, work):
    """The image stored once as a JPEG (quality 95) and a PNG, the command's inputs.

    Returns ``{".jpg": path, ".png": path}``; files already in ``work`` are kept.
    """
    import cv2
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    stem = Path(image_path).stem
    files, image = {}, None
    for ext, params in ((".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]), (".png", [])):
        path = work / f"{stem}{ext}"
        if not path.exists():
            if image is None:
                image = np.load(image_path)
            tmp = path.with_suffix(".tmp" + ext)
            if not cv2.imwrite(str(tmp), image[:, :, ::-1], params):
                raise OSError(f"could not write {tmp}")
            os.replace(tmp, path)
        files[ext] = path
    return files


class StageClock:
    """A pipeline ``progress`` callback: when each stage started."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.starts = []          # (stage, clock()) in order, one per stage

    def __call__(self, message):
        now = self.clock()
        stage = next((s for prefix, s in STAGE_OF_MESSAGE if message.startswith(prefix)),
                     f"other: {message}")
        if not self.starts or self.starts[-1][0] != stage:
            self.starts.append((stage, now))

    def durations(self, end):
        """{stage: seconds} from each start to the next (the last to ``end``)."""
        out = {}
        for (stage, t0), (_, t1) in zip(self.starts, self.starts[1:] + [(None, end)]):
            out[stage] = out.get(stage, 0.0) + (t1 - t0)
        return out


def breakdown(path, out_dir, options):
    """One ``pipeline.compress_file`` run: {stage: seconds}, wall seconds, report."""
    from kmeans_fast import pipeline
    out_dir = Path(out_dir)
    png, jpeg = pipeline.output_names(Path(path).stem, options, batch=True)
    clock = StageClock()
    started = time.perf_counter()
    report = pipeline.compress_file(path, out_dir / png, out_dir / jpeg, options,
                                    progress=clock)
    end = time.perf_counter()
    seconds = clock.durations(end)
    seconds["read"] = report["input"]["seconds"]
    both = seconds.pop("JPEG encode + decode", None)
    if both is not None:
        seconds["JPEG encode"] = report["jpeg"]["seconds"]
        seconds["JPEG decode"] = both - report["jpeg"]["seconds"]
    seconds["other"] = (end - started) - sum(seconds.values())
    for name in (out_dir / png, out_dir / jpeg):
        name.unlink(missing_ok=True)
    return seconds, end - started, report


def pillow_png(palette, labels, level=6):
    """Pillow's PNG at zlib ``level``, as bytes: the encoder ``kmeans_fast.io``
    used before ``kmeans_fast.png`` -- indexed at the smallest bit depth for
    k <= 256 (gray palettes as gray entries, alpha in tRNS unless all opaque),
    truecolour above."""
    from PIL import Image
    palette = np.asarray(palette, dtype=np.uint8)
    height, width = labels.shape
    k, n_ch = palette.shape
    if k <= 256:
        im = Image.frombuffer("P", (width, height), labels.astype(np.uint8, copy=False),
                              "raw", "P", 0, 1)
        if n_ch == 4 and (palette[:, 3] == 255).all():
            palette = palette[:, :3]
        entries = np.repeat(palette, 3, axis=1) if palette.shape[1] == 1 else palette
        im.putpalette(np.ascontiguousarray(entries).tobytes(),
                      rawmode="RGBA" if palette.shape[1] == 4 else "RGB")
        options = {"bits": next(b for b in (1, 2, 4, 8) if k <= 1 << b)}
    else:
        pixels = palette[labels]
        im = Image.fromarray(pixels[:, :, 0] if n_ch == 1 else pixels)
        options = {}
    out = io.BytesIO()
    im.save(out, format="PNG", compress_level=level, **options)
    return out.getvalue()


def png_study(image, ks, repeats, *, seed=0, optimize=True):
    """PNG encode of ``quantize(image, k)``'s labels: Pillow level 6 against
    ``encode_png`` (interleaved, :func:`benchmarks.png_encode.measure`), and the
    bytes ``optimize=True`` saves.  A list of rows, one per k."""
    from kmeans_fast import png, quantize
    from .png_encode import measure

    encoders = {"Pillow level 6": pillow_png,
                f"encode_png level {png.DEFAULT_LEVEL}": png.encode_png}
    rows = []
    for k in ks:
        q = quantize(image, k, seed=seed)
        if len(q.palette) > 256:
            continue
        found = measure(q.palette, q.labels, encoders, repeats)
        (pil_s, pil_bytes), (ours_s, ours_bytes) = found.values()
        row = dict(k=k, colors=len(q.palette), pillow_s=pil_s, pillow_bytes=pil_bytes,
                   encode_png_s=ours_s, encode_png_bytes=ours_bytes,
                   speedup=pil_s / ours_s, size_vs_pillow=ours_bytes / pil_bytes)
        if optimize:
            seconds, data = _timed(lambda: png.encode_png(q.palette, q.labels, optimize=True))
            row.update(optimize_s=seconds, optimize_bytes=len(data),
                       optimize_gain=1 - len(data) / ours_bytes)
        rows.append(row)
    return rows


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _warm_up(image, ks, work, optimize):
    """JIT (cache load) and first-call costs of every stage, on a crop."""
    from kmeans_fast import pipeline, png
    import cv2
    crop = np.ascontiguousarray(image[:96, :128])
    path = Path(work) / "e2e_warm.png"
    cv2.imwrite(str(path), crop[:, :, ::-1])
    for k in ks:
        breakdown(path, work, pipeline.Options(colors=k))
    from kmeans_fast import quantize
    q = quantize(crop, ks[0])
    pillow_png(q.palette, q.labels)
    if optimize:
        png.encode_png(q.palette, q.labels, optimize=True)
    path.unlink()


def end_to_end(image_path, work, *, ks, repeats, seed=0, png_ks=None, optimize=True):
    """Median seconds of every stage of the pipeline, per input format and k,
    over ``repeats`` interleaved passes; then the PNG encoder study."""
    from kmeans_fast import pipeline

    work = Path(work)
    out_dir = work / "e2e_out"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = source_files(image_path, work)
    image = np.load(image_path)
    _warm_up(image, ks, out_dir, optimize)

    runs = {}
    for _ in range(repeats):
        for ext in (".jpg", ".png"):
            for k in ks:
                options = pipeline.Options(colors=k, seed=seed)
                seconds, wall, report = breakdown(files[ext], out_dir, options)
                runs.setdefault((ext, k), []).append((seconds, wall, report))
    rows = []
    for (ext, k), found in runs.items():
        report = found[-1][2]
        stages = {name: statistics.median(s.get(name, 0.0) for s, _, _ in found)
                  for name in STAGES + ("other",)}
        rows.append(dict(input="JPEG" if ext == ".jpg" else "PNG", k=k, stages=stages,
                         total_s=statistics.median(w for _, w, _ in found),
                         times_s=[w for _, w, _ in found],
                         steps_run=report["kmeans"]["steps_run"],
                         psnr=report["kmeans"]["psnr"], ssim=report["kmeans"]["ssim"],
                         jpeg_psnr=report["jpeg"]["psnr"], jpeg_ssim=report["jpeg"]["ssim"],
                         png_bytes=report["kmeans"]["bytes"],
                         jpeg_bytes=report["jpeg"]["bytes"]))
    png_rows = png_study(image, png_ks or ks, repeats, seed=seed, optimize=optimize)
    return dict(kind="e2e", image=str(image_path), ks=list(ks), repeats=repeats,
                options="kmeans_fast.pipeline.Options(colors=k): the command's defaults",
                stage_by=STAGE_BY, breakdown=rows, png=png_rows,
                input_bytes={"JPEG": files[".jpg"].stat().st_size,
                             "PNG": files[".png"].stat().st_size})
