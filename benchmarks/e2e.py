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
from .measure import psnr, timed
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


# the package's functions, or stand-ins with the same signatures -------------
def _cv2_read(path):
    import cv2
    bgr = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _pillow_png(path, palette, labels, *, level=9):
    from PIL import Image
    if len(palette) <= 256:
        img = Image.fromarray(labels.astype(np.uint8), mode="P")
        img.putpalette(palette.reshape(-1).tolist())
    else:  # PNG palettes hold at most 256 colours
        img = Image.fromarray(palette[labels])
    img.save(path, format="PNG", compress_level=level)
    return Path(path).stat().st_size


def _cv2_jpeg(image, quality=JPEG_QUALITY):
    import cv2
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()


def _write_bytes(path, data):
    Path(path).write_bytes(data)
    return len(data)


def _cv2_decode(data, name="image"):
    import cv2
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                        cv2.COLOR_BGR2RGB)


def _psnr_only(a, b):
    return {"psnr": psnr(a, b)[0]}


def _io():
    """What the CLI uses: kmeans_fast.io and kmeans_fast.metrics, when present."""
    try:
        from kmeans_fast import io as kio
        found = dict(read=kio.read_image, write_png=kio.write_png,
                     encode_jpeg=kio.encode_jpeg, write_bytes=kio.write_bytes,
                     decode=kio.decode_image, io_by="kmeans_fast.io")
    except (ImportError, AttributeError):
        found = dict(read=_cv2_read, write_png=_pillow_png, encode_jpeg=_cv2_jpeg,
                     write_bytes=_write_bytes, decode=_cv2_decode,
                     io_by="OpenCV / Pillow (no kmeans_fast.io)")
    try:
        from kmeans_fast.metrics import psnr as kpsnr, ssim as kssim
        found.update(quality=lambda a, b: {"psnr": kpsnr(a, b), "ssim": kssim(a, b)},
                     quality_by="kmeans_fast.metrics PSNR + SSIM")
    except ImportError:
        found.update(quality=_psnr_only, quality_by="NumPy PSNR (no kmeans_fast.metrics)")
    return found


def end_to_end(image_path, work, *, k, steps, repeats, seed, kf_init):
    """Median seconds of every stage over ``repeats`` passes, and who ran it.

    The stages are those of ``kmeans-fast IMAGE``: read the photo, quantize,
    write the indexed PNG (zlib level 9, the CLI's default), measure it, encode
    and write the comparison JPEG of the original (quality 95), measure that.
    """
    from kmeans_fast import quantize
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    image = np.load(image_path)
    files = _source_files(image, work, Path(image_path).stem)
    out_png, out_jpg = work / "e2e_out.png", work / "e2e_out.jpg"
    f = _io()

    # warm-up on a crop: JIT (cache load) and first-call costs stay out of the timings
    crop = np.ascontiguousarray(image[:64, :64])
    warm_up(METHODS["numba-auto"], image, k, steps, seed, kf_init)
    small = quantize(crop, min(k, 8), steps=1, init="random", seed=0)
    f["write_png"](work / "warm.png", small.palette, small.labels)
    f["decode"](f["encode_jpeg"](crop, JPEG_QUALITY), "warm-up")
    f["quality"](crop, small.image())
    (work / "warm.png").unlink(missing_ok=True)

    centres = shared_centres(image, k, seed)
    init = kf_init_args(centres, k, seed, kf_init)
    stages = {name: [] for name in ("read JPEG", "read PNG", "quantize", "write PNG",
                                    "measure PNG", "encode + write JPEG", "measure JPEG")}

    def jpeg():
        data = f["encode_jpeg"](image, JPEG_QUALITY)
        f["write_bytes"](out_jpg, data)
        return data

    for _ in range(repeats):
        t, decoded = timed(f["read"], files[".jpg"])
        stages["read JPEG"].append(t)
        del decoded
        stages["read PNG"].append(timed(f["read"], files[".png"])[0])
        t, q = timed(quantize, image, k, steps=steps, **init)
        stages["quantize"].append(t)
        stages["write PNG"].append(timed(f["write_png"], out_png, q.palette, q.labels)[0])
        t, png_scores = timed(lambda: f["quality"](image, q.image()))
        stages["measure PNG"].append(t)
        t, data = timed(jpeg)
        stages["encode + write JPEG"].append(t)
        t, jpeg_scores = timed(lambda: f["quality"](image, f["decode"](data, "the JPEG")))
        stages["measure JPEG"].append(t)
    by = {"read JPEG": f["io_by"], "read PNG": f"{f['io_by']} (not in the total)",
          "quantize": f"numba auto, {'shared centres' if kf_init == 'shared' else 'init=random'}",
          "write PNG": f"{f['io_by']}, zlib level 9",
          "measure PNG": f"{f['quality_by']} of palette[labels]",
          "encode + write JPEG": f"{f['io_by']}, quality {JPEG_QUALITY}, of the original",
          "measure JPEG": f"decode + {f['quality_by']}"}
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
