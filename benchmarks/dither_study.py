"""Dithering study: how kmeans_fast.dither looks (SSIMULACRA2), how big it makes PNGs, how fast it is.

``python -m benchmarks.dither_study`` dithers the ten real photos bundled with
scikit-image and scikit-learn, a generated smooth "sky" and generated flat
graphics (flat colours, anti-aliased edges; some with a few gradients) onto
k = 16, 64, 256 colour palettes and scores every result with SSIMULACRA2 (the
``ssimulacra2`` package; higher is better) and the size of its indexed PNG
(``kmeans_fast.io.png_bytes`` at its default level, for every method alike).

Palettes: space "rgb" uses ``quantize(image, k, seed=0).palette``; space
"oklab" (the engine's own Oklab k-means is not ready) runs scikit-learn's
weighted k-means (``n_init=1, random_state=0``) on ``colour.features`` of the
distinct colours (weights: their counts) and maps the centres back with
``colour.palette_from_centres``.  Each setting dithers in the palette's space.

Settings: no dithering; ``fs`` at strengths 1, 0.75 and 0.5; ``ordered``;
ablations of the ``fs`` design (no error limit = plain serpentine
Floyd-Steinberg; no snapping distance in Oklab); two per-pixel dither-strength
maps (an experiment, not in the library: a serial Numba copy of the ``fs``
algorithm here, checked equal to the library's); libimagequant at dithering 0
and 1 and Pillow's median cut with Floyd-Steinberg, each with its own palette.

``--speed`` times 24 MP (``sample_image(4000, 6000)``), k = 256, instead:
the engine's undithered remap against ``dither()`` with each method.

Writes ``DITHER.md`` and ``dither.json`` to ``--out`` (default
``benchmarks/results``).  Needs the ``[bench]`` extra and ``ssimulacra2``.
About 20 minutes on 2 cores (most of it SSIMULACRA2 and the Oklab k-means).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
from numba import njit

from .quality import photos
from .system import machine

KS = (16, 64, 256)


# --------------------------------------------------------------------------
# generated images
# --------------------------------------------------------------------------
def sky(height=512, width=768):
    """A dusk sky: a vertical three-colour gradient and a warm glow, no noise."""
    y = (np.arange(height)[:, None] + 0.5) / height
    x = (np.arange(width)[None, :] + 0.5) / width
    top, mid, low = np.array([28, 52, 120.]), np.array([190, 120, 150.]), np.array([250, 180, 90.])
    t = y[..., None]
    col = np.where(t < 0.6, top + (mid - top) * (t / 0.6), mid + (low - mid) * ((t - 0.6) / 0.4))
    glow = np.exp(-(((x - 0.7) * 1.5) ** 2 + (y - 0.85) ** 2) / 0.05)[..., None]
    return np.clip(np.rint(col + glow * np.array([60, 50, 20.])), 0, 255).astype(np.uint8)


def flat_graphic(seed, gradients=True, height=512, width=640, supersample=4):
    """A logo/diagram-like picture: flat rectangles, discs, a bar, text-like
    marks, anti-aliased by supersampling; with ``gradients``, also a linear
    gradient bar and a radial gradient disc."""
    rng = np.random.default_rng(seed)
    h, w = height * supersample, width * supersample
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = (yy + 0.5) / supersample, (xx + 0.5) / supersample
    cols = rng.integers(0, 256, (8, 3)).astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = cols[0]
    for i in range(1, 5):
        y0, x0 = rng.uniform(0, height * 0.7), rng.uniform(0, width * 0.7)
        img[(yy > y0) & (yy < y0 + rng.uniform(40, 200)) & (xx > x0)
            & (xx < x0 + rng.uniform(40, 250))] = cols[i]
    for i in range(3):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(20, 90)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = cols[5 + i % 3]
    img[np.abs((yy - 0.3 * height) - 0.5 * (xx - 0.1 * width)) < 4] = cols[6]
    for j in range(12):
        y0, x0 = 0.82 * height + (j % 2) * 14, 40 + j * 22
        img[(yy > y0) & (yy < y0 + 10) & (xx > x0) & (xx < x0 + 3 + (j % 3) * 5)] = cols[7]
    if gradients:
        y0, x0 = 0.05 * height, 0.55 * width
        m = (yy > y0) & (yy < y0 + 60) & (xx > x0) & (xx < x0 + 0.4 * width)
        t = ((xx - x0) / (0.4 * width))[..., None]
        img[m] = (cols[1] * (1 - t) + cols[2] * t)[m]
        cy, cx, r = 0.6 * height, 0.25 * width, 60
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        m = d2 < r * r
        t = (np.sqrt(d2) / r)[..., None]
        img[m] = (cols[3] * (1 - t) + cols[4] * t)[m]
    img = img.reshape(height, supersample, width, supersample, 3).mean(axis=(1, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def images():
    """(name, kind, image): kind is "photo", "sky", "flat+gradients" or "flat"."""
    out = [(name, "photo", image) for name, image in photos()]
    out.append(("sky", "sky", sky()))
    out += [(f"graphic{s}", "flat+gradients", flat_graphic(s)) for s in range(3)]
    out += [(f"flat{s}", "flat", flat_graphic(10 + s, gradients=False)) for s in range(2)]
    return out


# --------------------------------------------------------------------------
# palettes
# --------------------------------------------------------------------------
def palette(image, k, space):
    from kmeans_fast import colour, quantize
    if space == "rgb":
        return quantize(image, k, seed=0).palette
    from sklearn.cluster import KMeans
    pixels = image.reshape(-1, image.shape[-1])
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    if len(colours) <= k:
        return colours
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(k, n_init=1, random_state=0).fit(
            colour.features(colours, "oklab").astype(np.float64), sample_weight=counts)
    return colour.palette_from_centres(km.cluster_centers_, "oklab", image.shape[-1])


# --------------------------------------------------------------------------
# SSIMULACRA2, with the original's half computed once per image
# --------------------------------------------------------------------------
class Ssimulacra2:
    """``ssimulacra2.compute_ssimulacra2`` on in-memory RGB images: the same
    computation (the package's own functions, in its order), with the
    original's blurred planes kept for the many distorted versions.  Checked
    equal to the package's file-based function at start-up."""

    def __init__(self, original):
        from ssimulacra2 import ssimulacra2 as s2
        self.s2 = s2
        self.original = original
        self.scales = []
        lin = s2.srgb_to_linear(original.astype(np.float64))
        for scale in range(s2.kNumScales):
            xyb = s2.make_positive_xyb(s2.linear_rgb_to_xyb(lin))
            if xyb.shape[0] < 8 or xyb.shape[1] < 8:
                break
            self.scales.append((xyb, s2.blur_image(xyb * xyb), s2.blur_image(xyb)))
            if scale < s2.kNumScales - 1:
                lin = s2.downsample(lin, 2, 2)

    def __call__(self, distorted):
        s2 = self.s2
        lin = s2.srgb_to_linear(distorted.astype(np.float64))
        msssim = s2.Msssim()
        for scale, (img1, sigma1_sq, mu1) in enumerate(self.scales):
            img2 = s2.make_positive_xyb(s2.linear_rgb_to_xyb(lin))
            data = s2.MsssimScale()
            mu2 = s2.blur_image(img2)
            data.avg_ssim = s2.ssim_map(mu1, mu2, sigma1_sq, s2.blur_image(img2 * img2),
                                        s2.blur_image(img1 * img2))
            data.avg_edgediff = s2.edge_diff_map(img1, mu1, img2, mu2)
            msssim.scales.append(data)
            if scale < s2.kNumScales - 1:
                lin = s2.downsample(lin, 2, 2)
        return msssim.score()

    def check(self, distorted, folder):
        """Assert equality with the package's own function on PNG files."""
        from PIL import Image
        from ssimulacra2 import compute_ssimulacra2
        a, b = Path(folder) / "original.png", Path(folder) / "distorted.png"
        Image.fromarray(self.original).save(a)
        Image.fromarray(distorted).save(b)
        assert compute_ssimulacra2(str(a), str(b)) == self(distorted)


# --------------------------------------------------------------------------
# the dither-map experiment: the library's fs algorithm, serial, one band,
# with a per-pixel factor on the strength
# --------------------------------------------------------------------------
@njit(cache=True)
def _nearest(t, pal):
    best, arg = np.inf, 0
    for j in range(pal.shape[0]):
        d = (t[0] - pal[j, 0]) ** 2
        for c in range(1, pal.shape[1]):
            d = d + (t[c] - pal[j, c]) ** 2
        if d < best:
            best, arg = d, j
    return arg


@njit(cache=True)
def _fs_with_map(feat, pal, snaps, j0, weight, strength, limit):
    height, width, n_ch = feat.shape
    labels = np.empty((height, width), np.int64)
    err = np.zeros((2, width + 2, n_ch))
    taps = ((0, 1, 7.0 / 16.0), (1, -1, 3.0 / 16.0), (1, 0, 5.0 / 16.0), (1, 1, 1.0 / 16.0))
    for y in range(height):
        cur, nxt = err[y & 1], err[1 - (y & 1)]
        nxt[:] = 0.0
        ahead = 1 if y % 2 == 0 else -1
        for s in range(width):
            x = s if ahead == 1 else width - 1 - s
            if snaps[y, x]:
                labels[y, x] = j0[y, x]
                continue
            target = feat[y, x] + (strength * weight[y, x]) * cur[x + 1]
            j = _nearest(target, pal)
            labels[y, x] = j
            r = target - pal[j]
            n2 = r[0] * r[0]
            for c in range(1, n_ch):
                n2 = n2 + r[c] * r[c]
            if n2 > limit * limit:
                r = r * (limit / np.sqrt(n2))
            for dy, dx, w in taps:
                row = cur if dy == 0 else nxt
                row[x + 1 + dx * ahead] += r * w
    return labels


def dither_with_map(image, pal_colours, space, strength, weight_fn):
    """The library's fs algorithm on one band, the strength times weight_fn(...) per pixel."""
    from kmeans_fast import colour
    from kmeans_fast import dither as D
    n_ch = image.shape[2]
    pal = colour.features(pal_colours, space).astype(np.float64)
    feat = colour.features(image.reshape(-1, n_ch), space).astype(np.float64).reshape(image.shape)
    j0 = D.dither(image, pal_colours, method="none", space=space).astype(np.int64)
    sq = ((feat - pal[j0]) ** 2).sum(axis=2)
    snaps = sq <= D.SNAP[space] ** 2
    step = D._lattice_step(*image.shape[:2])
    q = math.sqrt(int(sq[::step, ::step].astype(np.int64).sum()) / sq[::step, ::step].size)
    weight = weight_fn(feat, j0, q)
    return _fs_with_map(feat, pal, snaps, j0, weight, float(strength), D.ERROR_LIMIT * q)


def weight_one(feat, labels, q):
    return np.ones(labels.shape)


def weight_contrast(feat, labels, q, low=1.0, high=8.0):
    """1 where the largest feature step to a 4-neighbour is <= low * q, falling
    linearly to 0 at high * q (edges and texture are dithered less)."""
    pad = np.pad(feat, ((1, 1), (1, 1), (0, 0)), mode="edge")
    steps = [np.sqrt(((pad[1 + dy:1 + dy + feat.shape[0], 1 + dx:1 + dx + feat.shape[1]] - feat)
                      ** 2).sum(axis=2)) for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))]
    v = np.max(steps, axis=0) / max(q, 1e-9)
    return np.clip(1 - (v - low) / (high - low), 0.0, 1.0)


def weight_runs(feat, labels, q, c=2.0):
    """libimagequant's idea: long runs of one undithered label (flat, banding
    areas) are dithered fully, short runs (noise, detail) less: g / (g + c),
    g = horizontal + vertical run length (each capped at 32)."""
    def run_lengths(lab):
        out = np.empty(lab.shape)
        for y in range(lab.shape[0]):
            row = lab[y]
            edges = np.flatnonzero(np.r_[True, row[1:] != row[:-1], True])
            lengths = np.diff(edges)
            out[y] = np.repeat(lengths, lengths)
        return out
    g = np.minimum(run_lengths(labels), 32) + np.minimum(run_lengths(labels.T).T, 32)
    return g / (g + c)


# --------------------------------------------------------------------------
# the study
# --------------------------------------------------------------------------
def settings():
    """{name: (space or None, run(image, palette, space) -> labels)}."""
    from kmeans_fast import dither as D

    def lib(method, strength=1.0, **constants):
        def run(image, pal, space):
            saved = {name: getattr(D, name) for name in constants}
            try:
                for name, value in constants.items():
                    setattr(D, name, value)
                return D.dither(image, pal, method=method, strength=strength, space=space)
            finally:
                for name, value in saved.items():
                    setattr(D, name, value)
        return run

    def mapped(fn):
        return lambda image, pal, space: dither_with_map(image, pal, space, 1.0, fn)

    out = {}
    for space in ("rgb", "oklab"):
        out[f"none {space}"] = (space, lib("none"))
        for s in (1.0, 0.75, 0.5):
            out[f"fs {s:g} {space}"] = (space, lib("fs", s))
        out[f"ordered 1 {space}"] = (space, lib("ordered"))
        out[f"fs 1 {space}, no error limit"] = (space, lib("fs", 1.0, ERROR_LIMIT=math.inf))
    out["fs 1 oklab, snap exact only"] = ("oklab", lib("fs", 1.0, SNAP={"rgb": 0.0, "oklab": 0.0}))
    out["fs 1 oklab, contrast map"] = ("oklab", mapped(weight_contrast))
    out["fs 1 oklab, run-length map"] = ("oklab", mapped(weight_runs))
    return out


def peers(image, k):
    """{name: (palette (k, 3) uint8, labels (H, W))}: libimagequant 0/1, Pillow FS."""
    import imagequant
    from PIL import Image
    out = {}
    pil = Image.fromarray(image)
    for level in (0.0, 1.0):
        q = imagequant.quantize_pil_image(pil, dithering_level=level, max_colors=k)
        out[f"libimagequant {level:g}"] = q
    out["Pillow FS"] = pil.quantize(k, dither=Image.Dither.FLOYDSTEINBERG)
    result = {}
    for name, q in out.items():
        pal = np.array(q.getpalette()[:3 * 256], dtype=np.uint8).reshape(-1, 3)
        labels = np.asarray(q)
        result[name] = (pal[:int(labels.max()) + 1], labels)
    return result


def measure(name, image, k, runs, folder):
    from kmeans_fast.io import png_bytes
    score = Ssimulacra2(image)
    pals = {space: palette(image, k, space) for space in ("rgb", "oklab")}
    row = {"image": name, "k": k}
    for setting, (space, run) in runs.items():
        pal = pals[space]
        started = time.perf_counter()
        labels = run(image, pal, space)
        seconds = time.perf_counter() - started
        row[setting] = {"ssimulacra2": score(pal[labels]), "png": len(png_bytes(pal, labels)),
                        "seconds": seconds}
    for peer, (pal, labels) in peers(image, k).items():
        row[peer] = {"ssimulacra2": score(pal[labels]),
                     "png": len(png_bytes(pal, labels.astype(np.uint8)))}
    if folder is not None:       # once: our in-memory score is the package's, and the
        score.check(pals["rgb"][runs["fs 1 rgb"][1](image, pals["rgb"], "rgb")], folder)
        from kmeans_fast import dither as D   # map experiment's fs is the library's (one band)
        one_band = D._dither_image(image, pals["oklab"], "fs", 1.0, "oklab", 2,
                                   band_rows=2 * image.shape[0], warm_rows=0)
        mapped = dither_with_map(image, pals["oklab"], "oklab", 1.0, weight_one)
        assert np.array_equal(one_band, mapped.ravel())
    return row


def speed(repeats=5):
    """24 MP, k = 256: the engine's remap vs dither(), medians of interleaved runs."""
    import numba
    from kmeans_fast import api, quantize
    from kmeans_fast import dither as D
    from kmeans_fast.sample import sample_image
    image = sample_image(4000, 6000)
    pixels = image.reshape(-1, 3)
    threads = numba.get_num_threads()
    result = {"megapixels": pixels.shape[0] / 1e6, "k": 256, "threads": threads}
    small = image[:64, :64]
    for space in ("rgb", "oklab"):
        pal = quantize(image[::4, ::4], 256, seed=0).palette if space == "rgb" else \
            palette(image[::4, ::4], 256, "oklab")
        for method in ("none", "ordered", "fs"):           # compile before timing
            D.dither(small, pal, method=method, space=space)
        hist = api._Histogram(pixels, threads)
        colour_labels = D.dither(hist.colours[None], pal, method="none", space=space)[0]
        labels = np.empty(pixels.shape[0], dtype=np.uint8)
        runs = {
            "remap": lambda: hist.remap(pixels, colour_labels.astype(np.int64), labels),
            "none": lambda: D.dither(image, pal, method="none", space=space),
            "ordered": lambda: D.dither(image, pal, method="ordered", space=space),
            "fs": lambda: D.dither(image, pal, method="fs", space=space),
            "ordered, histogram given": lambda: D._dither_image(image, pal, "ordered", 1.0, space,
                                                               threads, histogram=hist),
            "fs, histogram given": lambda: D._dither_image(image, pal, "fs", 1.0, space, threads,
                                                          histogram=hist),
            "fs, 1 worker": lambda: D.dither(image, pal, method="fs", space=space, n_workers=1),
            "ordered, 1 worker": lambda: D.dither(image, pal, method="ordered", space=space,
                                                  n_workers=1),
        }
        if space == "rgb":      # the rgb path never uses a histogram
            del runs["ordered, histogram given"], runs["fs, histogram given"]
        times = {}
        for _ in range(repeats):
            for what, run in runs.items():
                wall, cpu = time.perf_counter(), time.process_time()
                run()
                times.setdefault(what, []).append((time.perf_counter() - wall,
                                                   time.process_time() - cpu))
        result[space] = {what: {"wall": float(np.median([w for w, _ in v])),
                                "cpu": float(np.median([c for _, c in v])),
                                "walls": [w for w, _ in v], "cpus": [c for _, c in v]}
                         for what, v in times.items()}
        print(space, {w: round(v["wall"], 3) for w, v in result[space].items()}, flush=True)
    return result


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def _median(rows, key, field):
    return float(np.median([r[key][field] for r in rows]))


def markdown(rows, info, names):
    ks = sorted({r["k"] for r in rows})
    kinds = {r["image"]: r["kind"] for r in rows}
    photos_ = [r for r in rows if r["kind"] == "photo"]
    lines = ["# Dithering study", "",
             f"Machine: {info['cpu']}, {info['cores']} cores; numba threads "
             f"{info.get('numba_threads', '?')}.  SSIMULACRA2 (higher is better; 30 low, 70 high "
             "quality), PNG bytes from `kmeans_fast.io.png_bytes` for every method.  "
             "Palettes: rgb = `quantize(image, k, seed=0).palette`; oklab = scikit-learn "
             "weighted k-means on Oklab features (see `benchmarks/dither_study.py`).  "
             "libimagequant and Pillow make their own palettes.", "",
             f"## Photos: median SSIMULACRA2 over the {len({r['image'] for r in photos_})} photos", "",
             "| setting | " + " | ".join(f"k={k}" for k in ks) + " | PNG size vs none, same space (median, k="
             + "/".join(map(str, ks)) + ") |", "|---|" + "---|" * (len(ks) + 1)]
    for name in names:
        cells = [f"{_median([r for r in photos_ if r['k'] == k], name, 'ssimulacra2'):.1f}"
                 for k in ks]
        base = "none " + ("oklab" if "oklab" in name else "rgb")
        if name.startswith(("libimagequant", "Pillow")):
            base = "libimagequant 0"
        sizes = "/".join(f"{np.median([r[name]['png'] / r[base]['png'] for r in photos_ if r['k'] == k]):.2f}"
                         for k in ks)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sizes} |")
    lines += ["", "PNG size ratios of libimagequant and Pillow are against libimagequant 0.", ""]
    for kind in ("sky", "flat+gradients", "flat"):
        sel = [r for r in rows if r["kind"] == kind]
        if not sel:
            continue
        imgs = sorted({r["image"] for r in sel})
        lines += [f"## {kind}: SSIMULACRA2 / PNG growth vs none (same space) per image", "",
                  "| setting | " + " | ".join(f"{i} k={k}" for k in ks for i in imgs) + " |",
                  "|---|" + "---|" * (len(ks) * len(imgs))]
        for name in names:
            cells = []
            for k in ks:
                for i in imgs:
                    r = next(x for x in sel if x["k"] == k and x["image"] == i)
                    base = "none " + ("oklab" if "oklab" in name else "rgb")
                    if name.startswith(("libimagequant", "Pillow")):
                        base = "libimagequant 0"
                    cells.append(f"{r[name]['ssimulacra2']:.1f} / {100 * r[name]['png'] / r[base]['png'] - 100:+.0f}%")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Per photo: SSIMULACRA2 of fs 1 oklab, fs 1 rgb and libimagequant 1", "",
              "| photo | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for img in sorted({r["image"] for r in photos_}):
        cells = []
        for k in ks:
            r = next(x for x in photos_ if x["k"] == k and x["image"] == img)
            cells.append(f"{r['fs 1 oklab']['ssimulacra2']:.1f} / {r['fs 1 rgb']['ssimulacra2']:.1f}"
                         f" / {r['libimagequant 1']['ssimulacra2']:.1f}")
        lines.append(f"| {img} | " + " | ".join(cells) + " |")
    del kinds
    return "\n".join(lines) + "\n"


def speed_markdown(result):
    lines = ["## Speed: 24 MP (sample_image(4000, 6000)), k = 256", "",
             f"Numba threads: {result['threads']}.  Median wall seconds (and CPU seconds, all "
             "threads) of interleaved runs.  `remap` is the engine's undithered remap with its "
             "histogram already built (`_Histogram.remap`); `dither` rows are whole calls from "
             "uint8 pixels, preparation included; \"histogram given\" passes the engine's "
             "histogram, as `quantize` would.", "",
             "| space | run | wall s | CPU s | wall - remap |", "|---|---|---|---|---|"]
    for space in ("rgb", "oklab"):
        t = result[space]
        for what, v in t.items():
            lines.append(f"| {space} | {what} | {v['wall']:.3f} | {v['cpu']:.2f} | "
                         f"{v['wall'] - t['remap']['wall']:+.3f} |")
    fs = result["rgb"]["fs"]
    lines += ["", f"Parallelism seen: `fs` (rgb) used {fs['cpu'] / fs['wall']:.2f} CPU seconds "
              f"per wall second with {result['threads']} threads (2.0 = both cores busy); one "
              "worker: " + ", ".join(
                  f"{space} {m} {1e9 * result[space][f'{m}, 1 worker']['cpu'] / (1e6 * result['megapixels']):.0f} ns"
                  for space in ("rgb", "oklab") for m in ("ordered", "fs"))
              + " of CPU per pixel, preparation included."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.dither_study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", default=",".join(map(str, KS)), help="colour counts (default 16,64,256)")
    p.add_argument("--images", default=None, help="comma-separated subset of image names")
    p.add_argument("--speed", action="store_true", help="time 24 MP instead of the quality study")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    import tempfile

    import numba
    info = dict(machine(), numba_threads=numba.get_num_threads())
    args.out.mkdir(parents=True, exist_ok=True)
    if args.speed:
        result = speed()
        (args.out / "dither_speed.json").write_text(json.dumps({"machine": info, **result}, indent=1))
        (args.out / "DITHER_SPEED.md").write_text(speed_markdown(result))
        print(speed_markdown(result))
        return
    ks = [int(x) for x in args.k.split(",")]
    runs = settings()
    rows = []
    checked = False
    with tempfile.TemporaryDirectory() as folder:
        for name, kind, image in images():
            if args.images and name not in args.images.split(","):
                continue
            for k in ks:
                row = measure(name, image, k, runs, None if checked else folder)
                checked = True
                row["kind"] = kind
                rows.append(row)
                print(f"{name} k={k}: " + ", ".join(
                    f"{s} {row[s]['ssimulacra2']:.1f}" for s in
                    ("none oklab", "fs 1 oklab", "fs 1 rgb", "libimagequant 1")), flush=True)
    names = list(runs) + ["libimagequant 0", "libimagequant 1", "Pillow FS"]
    (args.out / "dither.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    (args.out / "DITHER.md").write_text(markdown(rows, info, names))
    print(f"wrote {args.out / 'DITHER.md'}")


if __name__ == "__main__":
    main()
