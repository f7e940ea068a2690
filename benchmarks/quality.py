"""Quality at the defaults: ``quantize(image, k)`` against converged scikit-learn and libimagequant.

``python -m benchmarks.quality`` runs kmeans_fast with its default settings (and
other step caps, to show where the default sits) on the real photos that ship
with scikit-image and scikit-learn, and compares the PSNR with

* scikit-learn ``KMeans(init="k-means++", n_init=1, tol=0)`` run to convergence
  (max_iter=1000), fitted on the distinct colours weighted by their pixel
  counts -- the same objective as fitting every pixel, far faster;
* libimagequant (``imagequant``, dithering off), a widely used quantizer.

Each figure is the median over seeds 0, 1, 2.  Writes ``QUALITY.md`` and
``quality.json`` to ``--out`` (default ``benchmarks/results``).  Needs the
``[bench]`` extra.  About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from .system import machine

SCIKIT_IMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                       "immunohistochemistry", "retina", "stereo_motorcycle")
SCIKIT_LEARN_PHOTOS = ("china.jpg", "flower.jpg")
STEP_CAPS = (10, 20, 30, 50, 100, 1000)
SEEDS = (0, 1, 2)


def photos():
    """(name, (H, W, 3) uint8 RGB) for every bundled real photo."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    for name in SCIKIT_IMAGE_PHOTOS:
        image = getattr(skimage.data, name)()
        if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
            image = image[0]
        yield name, np.ascontiguousarray(image[:, :, :3])
    for name in SCIKIT_LEARN_PHOTOS:
        yield name, load_sample_image(name)


def step_caps():
    """The step caps measured: a spread around, and including, the default."""
    from kmeans_fast.api import DEFAULT_STEPS
    return sorted(set(STEP_CAPS) | {DEFAULT_STEPS})


def _median_over_seeds(fn):
    values = [fn(seed) for seed in SEEDS]
    return {key: float(np.median([v[key] for v in values])) for key in values[0]}


def measure(name, image, k):
    from kmeans_fast import api, quantize
    from kmeans_fast.metrics import psnr

    row = {"photo": name, "k": k, "megapixels": image.shape[0] * image.shape[1] / 1e6}
    for cap in step_caps():
        def ours(seed):
            started = time.perf_counter()
            q = quantize(image, k, steps=cap, seed=seed)
            return {"seconds": time.perf_counter() - started, "steps_run": q.steps_run,
                    "psnr": psnr(image, q.image())}
        row[f"steps={cap}"] = _median_over_seeds(ours)
    row["default_steps"] = api.DEFAULT_STEPS

    from sklearn.cluster import KMeans
    pixels = image.reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)

    def sklearn(seed):
        km = KMeans(k, init="k-means++", n_init=1, max_iter=1000, tol=0, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            km.fit(colours.astype(np.float64), sample_weight=counts)
        palette = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)
        labels = km.predict(pixels.astype(np.float64))
        return {"psnr": psnr(image, palette[labels].reshape(image.shape)),
                "steps_run": float(km.n_iter_)}
    row["sklearn"] = _median_over_seeds(sklearn)

    import imagequant
    from PIL import Image
    started = time.perf_counter()
    out = imagequant.quantize_pil_image(Image.fromarray(image), dithering_level=0.0,
                                        max_colors=k)
    row["libimagequant"] = {"seconds": time.perf_counter() - started,
                            "psnr": psnr(image, np.asarray(out.convert("RGB")))}
    return row


def markdown(rows, info):
    from kmeans_fast import api

    default = f"steps={api.DEFAULT_STEPS}"
    lines = ["# Quality at the defaults", "",
             f"Machine: {info['cpu']}, {info['cores']} cores; numba threads: "
             f"{info.get('numba_threads', '?')}.  Photos: the {len(rows) // len(_ks(rows))} "
             "real photos bundled with scikit-image and scikit-learn "
             f"({', '.join(sorted({r['photo'] for r in rows}))}).  Every figure is the median "
             "over the photos of the median over seeds 0-2.  kmeans_fast runs "
             "`quantize(image, k, steps=cap, seed=seed)`: k-means++ init, tol=0 (stops when the "
             f"centres stop moving); the default cap is {api.DEFAULT_STEPS}.  Times include "
             "k-means++ and the final labelling; scikit-learn is fitted on the weighted "
             "distinct colours, run to convergence (not timed).", "",
             "| k | kmeans_fast " + " | ".join(f"{c} steps" for c in step_caps())
             + " | scikit-learn converged | libimagequant |",
             "|---|" + "---|" * (len(step_caps()) + 2)]
    for k in _ks(rows):
        sel = [r for r in rows if r["k"] == k]
        cells = []
        for cap in step_caps():
            key = f"steps={cap}"
            cells.append(f"{_med(sel, key, 'psnr'):.2f} dB, {_med(sel, key, 'seconds'):.3f} s"
                         f" ({_med(sel, key, 'steps_run'):.0f} run)")
        lines.append(f"| {k} | " + " | ".join(cells)
                     + f" | {_med(sel, 'sklearn', 'psnr'):.2f} dB"
                       f" ({_med(sel, 'sklearn', 'steps_run'):.0f} steps)"
                     + f" | {_med(sel, 'libimagequant', 'psnr'):.2f} dB, "
                       f"{_med(sel, 'libimagequant', 'seconds'):.3f} s |")
    lines += ["", f"Per photo, kmeans_fast at the default ({default}) minus the others:", "",
              "| k | vs scikit-learn: min / median / max dB | vs libimagequant: min dB | "
              "faster than libimagequant |", "|---|---|---|---|"]
    for k in _ks(rows):
        sel = [r for r in rows if r["k"] == k]
        d = [r[default]["psnr"] - r["sklearn"]["psnr"] for r in sel]
        dl = [r[default]["psnr"] - r["libimagequant"]["psnr"] for r in sel]
        faster = sum(r[default]["seconds"] < r["libimagequant"]["seconds"] for r in sel)
        lines.append(f"| {k} | {min(d):+.3f} / {np.median(d):+.3f} / {max(d):+.3f} | "
                     f"{min(dl):+.3f} | {faster} of {len(sel)} |")
    return "\n".join(lines) + "\n"


def _ks(rows):
    return sorted({r["k"] for r in rows})


def _med(rows, key, field):
    return float(np.median([r[key][field] for r in rows]))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", default="16,64,256", help="colour counts (default 16,64,256)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    ks = [int(x) for x in args.k.split(",")]

    import numba
    from kmeans_fast import quantize
    from kmeans_fast.api import DEFAULT_STEPS

    quantize(np.zeros((8, 8, 3), np.uint8) + np.arange(8, dtype=np.uint8)[:, None, None],
             2)  # load the compiled kernels before timing
    rows = []
    for name, image in photos():
        for k in ks:
            rows.append(measure(name, image, k))
            r = rows[-1]
            print(f"{name} k={k}: default {r[f'steps={DEFAULT_STEPS}']['psnr']:.2f} dB, "
                  f"scikit-learn "
                  f"{r['sklearn']['psnr']:.2f} dB, libimagequant "
                  f"{r['libimagequant']['psnr']:.2f} dB", flush=True)
    info = dict(machine(), numba_threads=numba.get_num_threads())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps({"machine": info, "rows": rows},
                                                      indent=1))
    (args.out / "QUALITY.md").write_text(markdown(rows, info))
    print(f"wrote {args.out / 'QUALITY.md'}")


if __name__ == "__main__":
    main()
