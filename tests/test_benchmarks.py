"""The benchmark suite must keep running: a tiny end-to-end run plus its pieces."""

import importlib.util
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is a folder of the repository, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.images import count_distinct, generated_image, shared_centres  # noqa: E402
from benchmarks.methods import METHODS  # noqa: E402
from benchmarks.runner import MODES, run_suite  # noqa: E402


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """``python -m benchmarks --tiny`` into a temporary folder (seconds)."""
    tmp = tmp_path_factory.mktemp("bench")
    out, work = tmp / "out", tmp / "work"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--out", str(out),
                           "--work", str(work)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stderr


def test_tiny_run_writes_results_for_every_method(tiny_run):
    out, log = tiny_run
    results = json.loads((out / "results.json").read_text())
    runs = {r["method"]: r for r in results["runs"]}
    assert set(runs) == set(METHODS)
    for key, r in runs.items():
        method = METHODS[key]
        if method.missing():
            assert r["status"] == "not installed" and "not installed" in r["reason"]
            continue
        assert r["status"] == "ok", (key, r.get("reason"))
        assert r["median_s"] > 0 and all(t > 0 for t in r["times_s"])
        assert 10 < r["psnr_db"] < 60, (key, r["psnr_db"])
        assert r["added_bytes"] >= 0 and r["rss_after_load_bytes"] > 0
        assert r["threads"] == "?" or int(r["threads"]) >= 1
    # one algorithm, one start: every kmeans_fast variant gives the same image
    ours = {runs[k]["psnr_db"] for k in ("numba-auto", "numba-pixels", "numba-histogram",
                                         "numpy-reference")}
    assert len(ours) == 1
    assert results["machine"]["cores"] >= 1 and results["machine"]["cpu"]
    assert results["images"][0]["n_distinct"] > 1000
    e2e = results["e2e"]
    assert e2e["status"] == "ok" and all(s["median_s"] > 0 for s in e2e["stages"])
    assert {t["status"] for t in results["targets"]} == {"not measured"}  # no 24 MP image


def test_tiny_run_writes_markdown_and_chart(tiny_run):
    out, _ = tiny_run
    text = (out / "RESULTS.md").read_text()
    for heading in ("## Machine", "## Targets", "## Images", "## Every measurement",
                    "## JIT compile", "## End to end"):
        assert heading in text
    for method in METHODS.values():
        assert method.label in text
    assert "distinct colours" in text
    if importlib.util.find_spec("matplotlib"):
        png = out / "time_vs_megapixels.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size < 200_000


def test_generated_image_is_deterministic_and_cached(tmp_path):
    a = generated_image(0.05, tmp_path / "a")
    b = generated_image(0.05, tmp_path / "b")
    again = generated_image(0.05, tmp_path / "a")
    assert a.n_distinct == b.n_distinct == again.n_distinct
    img = a.load()
    assert img.shape == (a.height, a.width, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, b.load())
    assert count_distinct(img) == len(np.unique(img.reshape(-1, 3), axis=0))


def test_shared_centres_are_distinct_colours_of_the_image():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 4, (40, 50, 3), dtype=np.uint8)  # 64 possible colours
    c = shared_centres(img, 16, seed=3)
    assert c.shape == (16, 3) and c.dtype == np.float64
    assert len(np.unique(c, axis=0)) == 16
    colours = {tuple(p) for p in img.reshape(-1, 3)}
    assert all(tuple(int(v) for v in row) in colours for row in c)
    np.testing.assert_array_equal(c, shared_centres(img, 16, seed=3))
    assert len(shared_centres(img[:1, :2], 16)) <= 2  # fewer colours than k


class _FakeImage:
    def __init__(self, name, megapixels):
        self.name = self.path = name
        self.megapixels, self.nbytes = megapixels, 3


def test_slow_runs_are_skipped_and_marked(monkeypatch):
    """A run extrapolated past the budget is skipped (and every larger one); numba
    auto, the headline, always runs."""
    from benchmarks import methods

    # The workers are faked, so the peers need not be installed (CI has no [bench]).
    monkeypatch.setattr(methods.Method, "missing", lambda self: [])
    mode = replace(MODES["tiny"], ks=(16, 64), budget_s=1.0, repeats=3)
    seconds_per_mp = {"numba-auto": 0.1, "numpy-reference": 0.2, "sklearn": 0.5}

    def fake_worker(kind, *args):
        a = dict(zip(args[::2], args[1::2]))
        mp = {"s": 1, "m": 4, "l": 24}[a["--image"]]
        t = seconds_per_mp[a["--method"]] * mp * a["--k"] / 16
        return dict(status="ok", median_s=t, times_s=[t] * a["--repeats"], added_bytes=0,
                    psnr_db=30.0, threads=1)

    images = [_FakeImage("l", 24), _FakeImage("s", 1), _FakeImage("m", 4)]
    rows = run_suite(mode, images, ("numba-auto", "numpy-reference", "sklearn"),
                     workers=fake_worker, seed=0, kf_init="random")
    got = {(r["method"], r["image"], r["k"]): r for r in rows}
    assert [r["image"] for r in rows[::6]] == ["s", "m", "l"]          # smallest first
    assert all(r["status"] == "ok" for (m, _, _), r in got.items() if m == "numba-auto")
    assert len(got["numba-auto", "l", 64]["times_s"]) == 3             # 9.6 s, still run
    assert got["numpy-reference", "s", 16]["status"] == "ok"
    assert got["numpy-reference", "m", 16]["status"] == "ok"           # 0.8 s
    by_k = got["numpy-reference", "s", 64]                             # 0.2 * 4 = 0.8 s
    assert by_k["status"] == "ok"
    by_size = got["numpy-reference", "l", 16]                          # 0.8 * 6 = 4.8 s
    assert by_size["reason"] == "skipped: would take ~5 s > 1 s (from m)"
    assert got["numpy-reference", "m", 64]["reason"].endswith("(from s)")      # 3.2 s
    assert got["numpy-reference", "l", 64]["reason"] == \
        "skipped: would take > 1 s (skipped at m)"
    # scikit-learn at k=16 on 24 MP is a target's yardstick: run whatever the estimate
    assert got["sklearn", "m", 16]["status"] == "skipped"
    assert got["sklearn", "l", 16]["status"] == "ok"
    assert got["sklearn", "s", 64]["status"] == "skipped"


def _run(method, k, mp, median, **extra):
    return dict(method=method, k=k, megapixels=mp, image=f"{mp} MP", status="ok",
                median_s=median, steps_run=10, image_bytes=int(mp * 3e6),
                added_bytes=int(mp * 1e6), **extra)


def test_targets_are_judged_from_the_same_run():
    runs = [_run("numba-auto", 16, 24, 0.2), _run("numba-auto", 256, 24, 1.0),
            _run("numba-pixels", 16, 24, 3.0), _run("sklearn", 16, 24, 5.0),
            _run("numpy-reference", 16, 4, 4.0), _run("numba-auto", 16, 4, 0.04),
            dict(method="numpy-reference", k=16, megapixels=24, image="24 MP",
                 status="skipped", estimate_s=24.0, reason="skipped: would take ~24 s > 4 s")]
    results = dict(runs=runs, mode=dict(steps=10, ks=[16, 256]),
                   images=[dict(name="4 MP", megapixels=4), dict(name="24 MP", megapixels=24)],
                   methods={k: {} for k in ("numba-auto", "numba-pixels", "sklearn",
                                            "numpy-reference")})
    got = {t["target"]: t for t in report.targets(results)}
    assert got["numba auto, k=16, <= 0.25 s"]["status"] == "met"
    assert got[">= 30x scikit-learn (k=16, same run)"]["measured"] == "25x"
    assert got[">= 30x scikit-learn (k=16, same run)"]["status"] == "NOT met"
    assert got["numba auto, k=256, <= 0.8 s"]["status"] == "NOT met"
    assert got["pixel path <= 0.25 s per step (k=16)"]["status"] == "NOT met"
    ref = got[">= 100x the NumPy reference (k=16)"]
    assert ref["status"] == "not measured"
    assert "~120x" in ref["note"] and "measured 100x at 4 MP" in ref["note"]
    assert got["added peak memory <= image size (numba auto, k=16)"]["status"] == "met"
    assert not math.isnan(report.speedups(results)[0]["numba_s"])


def test_quality_report_tables():
    """The quality study's report, from rows shaped like measure()'s (no peers needed)."""
    from benchmarks import quality

    def row(photo, k, base):
        r = {"photo": photo, "k": k, "megapixels": 0.3}
        for i, cap in enumerate(quality.step_caps()):
            r[f"steps={cap}"] = {"psnr": base + 0.01 * i, "seconds": 0.01 * (i + 1),
                                 "steps_run": min(cap, 40)}
        r["sklearn"] = {"psnr": base + 0.05, "steps_run": 60.0}
        r["libimagequant"] = {"psnr": base - 0.3, "seconds": 0.5}
        return r

    rows = [row(p, k, b) for p, b in (("a", 30.0), ("b", 31.0)) for k, b2 in ((16, 0), (64, 6))
            for b in [b + b2]]
    text = quality.markdown(rows, {"cpu": "test cpu", "cores": 2, "numba_threads": 2})
    assert "| 16 |" in text and "| 64 |" in text and "test cpu, 2 cores" in text
    assert "| 16 | 30.50 dB, 0.010 s (10 run) |" in text  # medians over the two photos
    assert "30.55 dB (60 steps)" in text and "30.20 dB, 0.500 s" in text  # peers
    assert "2 of 2" in text    # faster than libimagequant on both photos
