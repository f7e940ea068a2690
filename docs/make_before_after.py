"""Make docs/before_after.png with the tool itself.

Run from anywhere, with the package installed:  python docs/make_before_after.py

It runs ``kmeans-fast compress --sample -k 16`` in a temporary folder, then
shows the built-in sample (left half) and the tool's 16-colour PNG (right half)
as one picture at half size: the original is shrunk by area averaging, the PNG
by nearest neighbour, so the right half holds only palette colours.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from kmeans_fast import io as kio
from kmeans_fast.sample import sample_image

K = 16
OUT = Path(__file__).resolve().parent / "before_after.png"


def label(image, text, x):
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    (w, h), _ = cv2.getTextSize(text, font, scale, 1)
    image[6 : 14 + h, x : x + w + 8] //= 3                     # a dark box behind the text
    cv2.putText(image, text, (x + 4, 10 + h), font, scale, (255, 255, 255), 1, cv2.LINE_AA)


def main():
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, "-m", "kmeans_fast", "compress", "--sample",
                               "-k", str(K), "--no-jpeg", "--json"], cwd=folder, check=True,
                              capture_output=True, text=True)
        report = json.loads(done.stdout)
        quantized = kio.read_image(Path(folder) / report["kmeans"]["path"])
    original = sample_image()
    height, width = original.shape[0] // 2, original.shape[1] // 2
    picture = cv2.resize(original, (width, height), interpolation=cv2.INTER_AREA)
    right = cv2.resize(quantized, (width, height), interpolation=cv2.INTER_NEAREST)
    picture[:, width // 2:] = right[:, width // 2:]
    picture[:, width // 2 - 1 : width // 2 + 1] = 255
    label(picture, f"original: {report['input']['raw_bytes'] // 1024} KB raw", 8)
    label(picture, f"k = {K}: {report['kmeans']['bytes'] // 1024} KB PNG", width // 2 + 8)
    ok, data = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_PNG_COMPRESSION, 9])
    kio.write_bytes(OUT, data.tobytes())
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
