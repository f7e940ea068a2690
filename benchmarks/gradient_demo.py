"""The README's before/after picture: a dusk-sky gradient at k=16, side by side.

    python -m benchmarks.gradient_demo              # writes docs/gradient_k16.png
    python -m benchmarks.gradient_demo --k 32 --out /tmp/sky.png

Four panels with labels: the original (the ``sky_dusk`` image of
:mod:`benchmarks.quality_images`), plain k-means (kmeans-fast at its defaults),
kmeans-fast as the command runs by default (``quantize(..., space="oklab",
dither="fs")``; a placeholder panel that
says "not available" until the option exists) and libimagequant at dithering
1.0, which is what ``pngquant`` does by default (or ``pngquant`` itself when the
``imagequant`` package is missing).  The picture is kept under 300 KB.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .quality import missing_options, palette_and_labels
from .quality_images import sky_dusk

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "gradient_k16.png"
PANEL_MP = 0.1            # each panel: about 387 x 258
LABEL_H = 30              # height of the label strip over each panel
MAX_BYTES = 300_000


def _placeholder(shape, text):
    import cv2
    panel = np.full(shape, 236, np.uint8)
    for i, line in enumerate(text.split("\n")):
        cv2.putText(panel, line, (16, shape[0] // 2 - 10 + 24 * i), cv2.FONT_HERSHEY_SIMPLEX,
                    0.55, (90, 90, 90), 1, cv2.LINE_AA)
    return panel


def kmeans_plain(image, k):
    from kmeans_fast import quantize
    return quantize(image, k, seed=0).image()


def kmeans_dithered(image, k):
    """kmeans-fast with Floyd-Steinberg dithering, or None when it has no ``dither=``."""
    if missing_options({"dither": "fs"}):
        return None
    from kmeans_fast import quantize
    return quantize(image, k, seed=0, space="oklab", dither="fs").image()


def pngquant_style(image, k):
    """(label, image): libimagequant at dithering 1.0, else pngquant; None when neither."""
    try:
        import imagequant
    except ImportError:
        imagequant = None
    if imagequant is not None:
        h, w = image.shape[:2]
        rgba = np.dstack([image, np.full((h, w), 255, np.uint8)])
        idx, pal = imagequant.quantize_raw_rgba_bytes(rgba.tobytes(), w, h,
                                                      dithering_level=1.0, max_colors=k)
        palette = np.asarray(pal, np.uint8).reshape(-1, 4)[:, :3]
        return "libimagequant, dither 1.0 (pngquant's default)", \
            palette[np.frombuffer(idx, np.uint8).reshape(h, w)]
    if shutil.which("pngquant"):
        from PIL import Image
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.png", Path(tmp) / "out.png"
            Image.fromarray(image).save(src)
            subprocess.run(["pngquant", "--force", "--output", str(dst), str(k), "--", str(src)],
                           check=True, capture_output=True)
            with Image.open(dst) as im:
                palette, labels = palette_and_labels(im)
        return "pngquant (default dithering)", palette[labels]
    return "pngquant-style dithering", None


def panels(k=16, megapixels=PANEL_MP):
    """[(label, (H, W, 3) uint8)]: original, plain, kmeans-fast dithered, pngquant-style."""
    image = sky_dusk(megapixels)
    dithered = kmeans_dithered(image, k)
    label, peer = pngquant_style(image, k)
    return [
        ("original", image),
        (f"kmeans-fast --plain, k={k}", kmeans_plain(image, k)),
        (f"kmeans-fast (Oklab, FS: the default), k={k}",
         dithered if dithered is not None
         else _placeholder(image.shape, "kmeans-fast dither=fs:\nnot available yet")),
        (f"{label}, k={k}",
         peer if peer is not None else _placeholder(image.shape, "not available:\n"
                                                    "install imagequant or pngquant")),
    ]


def compose(labelled, columns=2):
    """The panels in a grid, each under a white strip with its label."""
    import cv2
    h, w = labelled[0][1].shape[:2]
    rows = -(-len(labelled) // columns)
    gap = 6
    sheet = np.full((rows * (h + LABEL_H + gap), columns * (w + gap) - gap, 3), 255, np.uint8)
    for i, (label, panel) in enumerate(labelled):
        y, x = (i // columns) * (h + LABEL_H + gap), (i % columns) * (w + gap)
        cv2.putText(sheet, label, (x + 4, y + LABEL_H - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (30, 30, 30), 1, cv2.LINE_AA)
        sheet[y + LABEL_H:y + LABEL_H + h, x:x + w] = panel
    return sheet[:-gap]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gradient_demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    from PIL import Image
    sheet = compose(panels(args.k))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out, optimize=True)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}, {size:,} bytes)",
          file=sys.stderr)
    if size > MAX_BYTES:
        print(f"warning: {size:,} bytes is over {MAX_BYTES:,}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
