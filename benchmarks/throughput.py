"""Batch throughput: many small photos through ``kmeans-fast compress``.

:func:`photo_set` generates a folder of deterministic photo-like JPEGs (random
3:2 crops of the real photos bundled with scikit-image and scikit-learn, each
flipped or not, given its own colour balance, upscaled bicubically to the size
asked for, with mild sensor noise; nothing is downloaded).  :func:`throughput`
then times, in fresh processes and interleaved when repeated:

* the batch, ``kmeans-fast compress DIR -k K --out-dir A`` (its default jobs);
* the same batch with ``--jobs 1`` (one worker: the calling process);
* a shell loop running the command once per file, on the first ``loop_sample``
  files only (the total is scaled up to the whole folder, and says so);

and checks that the outputs are identical: every file of the two batches, and
of the loop, compared by SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np

from .measure import run_process

GENERATOR_VERSION = 1
JPEG_QUALITY = 90
NOISE_SIGMA = 1.5
SOURCES = (("skimage", "coffee"), ("skimage", "chelsea"), ("skimage", "astronaut"),
           ("skimage", "rocket"), ("sklearn", "china.jpg"), ("sklearn", "flower.jpg"))


def _load(kind, name):
    if kind == "skimage":
        import skimage.data
        return getattr(skimage.data, name)()
    from sklearn.datasets import load_sample_image
    return load_sample_image(name)


def source_photos():
    """[(name, (h, w, 3) uint8 RGB)] of the bundled photos that load; falls back
    to ``kmeans_fast.sample.sample_image`` when none does."""
    found = []
    for kind, name in SOURCES:
        try:
            found.append((name, np.ascontiguousarray(_load(kind, name)[:, :, :3], np.uint8)))
        except Exception:  # package or data file missing
            continue
    if not found:
        from kmeans_fast.sample import sample_image
        found = [(f"sample seed {s}", sample_image(400, 600, seed=s)) for s in range(4)]
    return found


def make_photo(photo, width, height, rng, sigma=NOISE_SIGMA):
    """A random 3:2 crop of ``photo`` (50-100 % of its width), maybe mirrored,
    colour-balanced by +-10 %, upscaled to (height, width), with noise."""
    import cv2
    h, w = photo.shape[:2]
    aspect = width / height
    crop_w = min(w, int(h * aspect)) * rng.uniform(0.5, 1.0)
    crop_h = crop_w / aspect
    x0 = rng.uniform(0, w - crop_w)
    y0 = rng.uniform(0, h - crop_h)
    sx, sy = crop_w / width, crop_h / height
    m = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
    out = cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out *= rng.uniform(0.9, 1.1, 3).astype(np.float32)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return np.ascontiguousarray(out.astype(np.uint8))


def photo_set(work, n, width, height, *, seed=0):
    """A folder of ``n`` generated photos (JPEG, quality 90), made once and kept."""
    import cv2
    folder = Path(work) / f"batch_{n}x{width}x{height}_s{seed}_v{GENERATOR_VERSION}"
    done = folder / "done.json"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    photos = source_photos()
    for i in range(n):
        name, photo = photos[i % len(photos)]
        image = make_photo(photo, width, height, np.random.default_rng([seed, i]))
        path = folder / f"photo_{i:04d}.jpg"
        if not cv2.imwrite(str(path), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"could not write {path}")
    done.write_text(json.dumps(dict(n=n, width=width, height=height, seed=seed,
                                    sources=[name for name, _ in photos])))
    return folder


def hashes(folder):
    """{file name: SHA-256} of the files in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).iterdir()) if p.is_file()}


def compare(reference, other, *, subset=False):
    """Names whose bytes differ between two {name: hash} maps: missing or extra
    files count (with ``subset``, only ``other``'s files must be in ``reference``)."""
    names = set(other) if subset else set(reference) | set(other)
    return sorted(n for n in names if reference.get(n) != other.get(n))


def batch_command(folder, out, k, jobs=None):
    cmd = [sys.executable, "-m", "kmeans_fast", "compress", str(folder), "-k", str(k),
           "--out-dir", str(out)]
    return cmd + ([] if jobs is None else ["--jobs", str(jobs)])


LOOP_SCRIPT = """\
py="$1"; k="$2"; out="$3"; shift 3
for f in "$@"; do
    stem=$(basename "${f%.*}")
    "$py" -m kmeans_fast compress "$f" -k "$k" --out-dir "$out" \\
        --jpeg-output "$out/${stem}_q95.jpg" || exit 1
done
"""


def loop_command(files, out, k):
    """The command once per file, in a bash loop; the JPEG named as a batch names it."""
    return ["bash", "-c", LOOP_SCRIPT, "loop", sys.executable, str(k), str(out),
            *map(str, files)]


def _fresh(folder):
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def throughput(folder, work, *, k, repeats, loop_sample, env, log=None):
    """Time the batch (default jobs, ``--jobs 1``) and a shell loop over a sample."""
    log = log or (lambda text: None)
    work = Path(work)
    files = sorted(p for p in Path(folder).iterdir() if p.suffix == ".jpg")
    sample = files[:loop_sample]
    outs = {name: work / f"throughput_{name}" for name in ("batch", "jobs1", "loop")}
    runs = (("batch", batch_command(folder, outs["batch"], k)),
            ("jobs1", batch_command(folder, outs["jobs1"], k, jobs=1)),
            ("loop", loop_command(sample, outs["loop"], k)))
    times = {name: [] for name, _ in runs}
    errors = {}
    for round_ in range(repeats):
        for name, cmd in runs:
            _fresh(outs[name])
            result = run_process(cmd, env=env, timeout_s=3600)
            if result["returncode"]:
                errors[name] = result["error"]
            times[name].append(result["seconds"])
            log(f"  round {round_ + 1}/{repeats} {name:<6} {result['seconds']:.1f} s"
                + (f" FAILED {result['error']}" if result["returncode"] else ""))
    found = {name: hashes(out) for name, out in outs.items()}
    for out in outs.values():
        shutil.rmtree(out, ignore_errors=True)
    if errors:
        return dict(status="failed", reason="; ".join(f"{n}: {e}" for n, e in errors.items()))
    n = len(files)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    loop_total = median["loop"] * n / len(sample)
    differ_jobs = compare(found["batch"], found["jobs1"])
    differ_loop = compare(found["batch"], found["loop"], subset=True)
    return dict(
        status="ok", files=n, sample=len(sample), k=k, repeats=repeats,
        default_jobs=min(os.cpu_count() or 1, n),
        times_s=times, median_s=median, loop_scaled_s=loop_total,
        files_per_s={"batch": n / median["batch"], "jobs1": n / median["jobs1"],
                     "loop": len(sample) / median["loop"]},
        vs_jobs1=median["jobs1"] / median["batch"], vs_loop=loop_total / median["batch"],
        outputs=dict(batch=len(found["batch"]), jobs1=len(found["jobs1"]),
                     loop=len(found["loop"])),
        differ_jobs1=differ_jobs[:10], n_differ_jobs1=len(differ_jobs),
        differ_loop=differ_loop[:10], n_differ_loop=len(differ_loop),
        identical=not differ_jobs and not differ_loop and len(found["loop"]) > 0)
