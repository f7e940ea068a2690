"""What the ``kmeans-fast`` command does with one photo, stage by stage.

read the photo (a JPEG; reading the same image as PNG is timed too) ->
quantize -> write the indexed PNG -> measure it (PSNR, SSIM) -> encode and write
the comparison JPEG -> measure that.  Each stage uses kmeans_fast's own
functions (``kmeans_fast.io``, ``kmeans_fast.metrics``), as the CLI does, and
OpenCV / Pillow / NumPy stand-ins when the package lacks them; the result says
which ran.  Runs inside a worker (``python -m benchmarks.worker e2e``).
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import numpy as np

from .images import shared_centres
from .measure import timed
from .methods import METHODS, kf_init_args, warm_up

JPEG_QUALITY = 95


def _source_files(image, work, stem):
    """The image written once as a JPEG (q95) and a PNG: the inputs to decode."""
    import cv2
    files = {}
    for ext, params in ((".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]), (".png", [])):
        path = Path(work) / f"{stem}{ext}"
        if not path.exists():
            tmp = path.with_suffix(".tmp" + ext)
            if not cv2.imwrite(str(tmp), image[:, :, ::-1], params):
                raise OSError(f"could not write {tmp}")
            os.replace(tmp, path)
        files[ext] = path
    return files


def end_to_end(image_path, work, *, k, steps, repeats, seed, kf_init):
    """Median seconds of every stage over ``repeats`` passes, and who ran it.

    The stages are those of ``kmeans-fast IMAGE``: read the photo, quantize,
    write the indexed PNG (the CLI's default zlib level), measure it, encode
    and write the comparison JPEG of the original (quality 95), measure that.
    """
    from kmeans_fast import io as kio
    from kmeans_fast import quantize
    from kmeans_fast.metrics import psnr as kpsnr, ssim as kssim

    def quality(a, b):
        return {"psnr": kpsnr(a, b), "ssim": kssim(a, b)}

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    image = np.load(image_path)
    files = _source_files(image, work, Path(image_path).stem)
    out_png, out_jpg = work / "e2e_out.png", work / "e2e_out.jpg"

    # warm-up on a crop: JIT (cache load) and first-call costs stay out of the timings
    crop = np.ascontiguousarray(image[:64, :64])
    warm_up(METHODS["numba-auto"], image, k, steps, seed, kf_init)
    small = quantize(crop, min(k, 8), steps=1, init="random", seed=0)
    kio.write_png(work / "warm.png", small.palette, small.labels)
    kio.decode_image(kio.encode_jpeg(crop, JPEG_QUALITY), "warm-up")
    quality(crop, small.image())
    (work / "warm.png").unlink(missing_ok=True)

    centres = shared_centres(image, k, seed)
    init = kf_init_args(centres, k, seed, kf_init)
    stages = {name: [] for name in ("read JPEG", "read PNG", "quantize", "write PNG",
                                    "measure PNG", "encode + write JPEG", "measure JPEG")}

    def jpeg():
        data = kio.encode_jpeg(image, JPEG_QUALITY)
        kio.write_bytes(out_jpg, data)
        return data

    for _ in range(repeats):
        t, decoded = timed(kio.read_image, files[".jpg"])
        stages["read JPEG"].append(t)
        del decoded
        stages["read PNG"].append(timed(kio.read_image, files[".png"])[0])
        t, q = timed(quantize, image, k, steps=steps, **init)
        stages["quantize"].append(t)
        stages["write PNG"].append(timed(kio.write_png, out_png, q.palette, q.labels)[0])
        t, png_scores = timed(lambda: quality(image, q.image()))
        stages["measure PNG"].append(t)
        t, data = timed(jpeg)
        stages["encode + write JPEG"].append(t)
        t, jpeg_scores = timed(lambda: quality(image, kio.decode_image(data, "the JPEG")))
        stages["measure JPEG"].append(t)
    io_by, quality_by = "kmeans_fast.io", "kmeans_fast.metrics PSNR + SSIM"
    by = {"read JPEG": io_by, "read PNG": f"{io_by} (not in the total)",
          "quantize": f"numba auto, {'shared centres' if kf_init == 'shared' else 'init=random'}",
          "write PNG": f"{io_by}, zlib level {kio.PNG_LEVEL}",
          "measure PNG": f"{quality_by} of palette[labels]",
          "encode + write JPEG": f"{io_by}, quality {JPEG_QUALITY}, of the original",
          "measure JPEG": f"decode + {quality_by}"}
    rows = [dict(stage=name, median_s=statistics.median(ts), times_s=ts, by=by[name])
            for name, ts in stages.items()]
    return dict(kind="e2e", image=str(image_path), k=k, steps=steps, repeats=repeats,
                steps_run=q.steps_run, path=q.method, stages=rows,
                total_s=sum(r["median_s"] for r in rows if r["stage"] != "read PNG"),
                scores={"PNG " + k_: v for k_, v in png_scores.items()}
                | {"JPEG " + k_: v for k_, v in jpeg_scores.items()},
                bytes={"input JPEG": files[".jpg"].stat().st_size,
                       "input PNG": files[".png"].stat().st_size,
                       "output PNG": out_png.stat().st_size,
                       "output JPEG": out_jpg.stat().st_size})
