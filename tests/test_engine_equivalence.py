"""The Numba backend against the NumPy reference: every path, both spaces, forced worker counts.

The reference shares no code with the Numba backend, so equal results (==, on
every array, the exact errors and the history) mean two implementations of
the documented algorithm agree.  Kernels run with 1, 2, 3 and 7 workers:
without forcing, tiny images get one worker and prove nothing about the
parallel reductions.
"""

import functools

import numpy as np
import pytest

from kmeans_fast import _numba_backend as nb
from kmeans_fast import api, colour, quantize, reference

from engine_cases import (PHOTOS, WORKERS, assert_same, error_of, next_palette, photo,
                          random_image, with_channels)

IMAGES = {
    "1x1": lambda: random_image((1, 1, 3), 0),
    "1xN": lambda: random_image((1, 301, 3), 1),
    "Nx1": lambda: random_image((299, 1, 3), 2),
    "odd-rgb": lambda: random_image((37, 53, 3), 3),       # 1961 distinct-ish colours
    "few-colours-rgb": lambda: random_image((40, 70, 3), 4, levels=5),
    "gray-2d": lambda: random_image((33, 71), 5),
    "gray-3d": lambda: random_image((20, 50, 1), 6, levels=40),
    "rgba": lambda: random_image((31, 45, 4), 7),
    "rgba-few": lambda: random_image((30, 30, 4), 8, levels=4),
    "photo-rgba-clear": lambda: with_channels(photo("chelsea"), 4, clear=True),
}
for _name in PHOTOS:
    for _c in (1, 3, 4):
        IMAGES[f"{_name}-c{_c}"] = (lambda n=_name, c=_c: with_channels(photo(n), c))

# More than a byte of labels (k=257) on quarter crops of the photos: the
# reference's k-means++ costs distinct colours x k x trials, seconds on the
# whole 96x128 photos; a crop still has ~2,800 colours, so 257 entries are made.
QUARTERS = {
    "astronaut-c3-48x64": lambda: with_channels(photo("astronaut"), 3)[:48, :64],
    "photo-rgba-clear-48x64": lambda: with_channels(photo("chelsea")[:48, :64], 4, clear=True),
}

# Every image at two k; the edge cases of k (one colour, three, more than a
# byte of labels) on a subset that spans shapes, channels and transparency.
EDGE = ("odd-rgb", "gray-2d", "rgba", "photo-rgba-clear", "astronaut-c3", "few-colours-rgb")
EDGE_257 = ("odd-rgb", "gray-2d", "rgba", *QUARTERS, "few-colours-rgb")
CASES = ([(name, k) for name in sorted(IMAGES) for k in (2, 16)]
         + [(name, k) for name in EDGE for k in (1, 3)]
         + [(name, 257) for name in EDGE_257])


def methods_for(image, space):
    n_ch = 1 if image.ndim == 2 else image.shape[2]
    return ("histogram", "pixels") if space == "rgb" and n_ch in (1, 3) else ("histogram",)


@functools.lru_cache(maxsize=None)
def _reference(name, k, space, init):
    """The NumPy reference's result for a case (test_bitmap_lookup_agrees
    checks the cases at k=16 again, on the Numba backend's other lookup)."""
    image = {**IMAGES, **QUARTERS}[name]()
    return quantize(image, k, backend="numpy", method="histogram", steps=6, init=init,
                    seed=11, space=space)


@pytest.mark.parametrize("name, k", CASES)
@pytest.mark.parametrize("space", ["rgb", "oklab"])
@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_backends_paths_and_workers_agree(name, k, space, init):
    image = {**IMAGES, **QUARTERS}[name]()
    args = dict(steps=6, init=init, seed=11, space=space)
    expected = _reference(name, k, space, init)
    assert len(expected.palette) <= k
    assert expected.labels.dtype == (np.uint8 if len(expected.palette) <= 256 else np.uint16)
    if name in QUARTERS:
        assert len(expected.palette) == k, "the crop has enough colours for k entries"
    for method in methods_for(image, space):
        if method == "pixels":
            assert_same(quantize(image, k, backend="numpy", method=method, **args), expected,
                        (name, k, space, init, "numpy", method))
        for workers in WORKERS:
            with nb.forced_workers(workers):
                got = quantize(image, k, method=method, **args)
            assert_same(got, expected, (name, k, space, init, method, workers))


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("space", ["rgb", "oklab"])
def test_bitmap_lookup_agrees(name, space, monkeypatch):
    """The test images are small, so the Numba backend finds their colours by
    sorting keys; the presence bitmap (large images) is reached here."""
    monkeypatch.setattr(nb, "SORTED_BELOW", 0)
    test_backends_paths_and_workers_agree(name, 16, space, "kmeans++")


@pytest.mark.parametrize("space", ["rgb", "oklab"])
def test_empty_clusters_are_refilled_identically(space):
    image = with_channels(photo("coffee"), 3)
    # Duplicated and far-away initial centers leave clusters empty.
    init = np.array([[0, 0, 0], [0, 0, 0], [400, 400, 400], [-90, 0, 0],
                     [128, 128, 128], [128, 128, 128]], dtype=np.float64)
    if space == "oklab":
        init = np.clip(init, 0, 255)
    expected = quantize(image, 6, init=init, steps=12, space=space, backend="numpy")
    for method in methods_for(image, space):
        for workers in WORKERS:
            with nb.forced_workers(workers):
                got = quantize(image, 6, init=init, steps=12, space=space, method=method)
            assert_same(got, expected, (space, method, workers))
    assert len(np.unique(expected.labels)) == 6, "every refilled center should win pixels"
    assert len(np.unique(expected.centers, axis=0)) == 6


def test_quantize_is_fit_palette_then_remap():
    for image in (with_channels(photo("astronaut"), 3), with_channels(photo("coffee"), 4,
                                                                      clear=True)):
        for space in ("rgb", "oklab"):
            for backend in ("numba", "numpy"):
                q = quantize(image, 12, seed=4, space=space, backend=backend)
                fit = api.fit_palette(api.histogram(image, backend=backend), 12, seed=4,
                                      space=space, backend=backend)
                labels = api.remap(image, fit.palette, space=space, backend=backend)
                assert np.array_equal(q.palette, fit.palette)
                assert np.array_equal(q.labels, labels)
                assert (q.inertia, q.sse, q.history) == (fit.inertia, fit.sse, fit.history)


def test_histograms_of_parts_add_up_to_the_whole():
    image = with_channels(photo("chelsea"), 3)
    whole = api.histogram(image)
    parts = [api.histogram(image[a:a + 20]) for a in range(0, image.shape[0], 20)]
    assert sum(parts) == whole
    assert parts[0] + sum(parts[1:]) == whole
    fit_whole = api.fit_palette(whole, 8, seed=1)
    fit_parts = api.fit_palette(sum(parts), 8, seed=1)
    assert np.array_equal(fit_whole.palette, fit_parts.palette)
    assert api.histogram(image, backend="numpy") == whole


@pytest.mark.parametrize("n_ch", [1, 3, 4])
@pytest.mark.parametrize("space", ["rgb", "oklab"])
@pytest.mark.parametrize("dither", ["fs", "ordered"])
def test_dithered_quantize_agrees(n_ch, space, dither):
    """quantize(dither=...) reuses the image's colour lookup in the Numba backend,
    and the reference dithers with its plain loop: the labels agree at any
    worker count, and the palette is the undithered fit's."""
    image = with_channels(photo("chelsea"), n_ch, clear=True)[:40, :52]
    args = dict(steps=5, seed=2, space=space, dither=dither, dither_strength=0.8)
    expected = quantize(image, 9, backend="numpy", **args)
    plain = quantize(image, 9, backend="numpy", steps=5, seed=2, space=space)
    assert np.array_equal(expected.palette, plain.palette)
    assert not np.array_equal(expected.labels, plain.labels)      # it did dither
    for workers in WORKERS:
        with nb.forced_workers(workers):
            assert_same(quantize(image, 9, **args), expected, (n_ch, space, dither, workers))


# --------------------------------------------------------------------------
# palette steps (reference, step 9): the runs above mostly stop before they
# converge, so these converge (steps=300) and compare the palette steps
# --------------------------------------------------------------------------
def _agree_at_every_worker_count(image, k, context, **args):
    expected = quantize(image, k, backend="numpy", **args)
    assert expected.converged, context
    for workers in WORKERS:
        with nb.forced_workers(workers):
            assert_same(quantize(image, k, **args), expected, (context, workers))
    return expected


@pytest.mark.parametrize("n_steps", [1, 2, 3])
def test_palette_step_limit_is_the_same(monkeypatch, n_steps):
    """Both backends stop after PALETTE_STEPS kept steps: this gray Oklab run
    keeps 3, so the limits 1, 2 and 3 each give another palette."""
    image = with_channels(photo("coffee"), 1)[:48, :64]
    args = dict(seed=1, steps=300, space="oklab")
    monkeypatch.setattr(nb, "PALETTE_STEPS", n_steps)
    monkeypatch.setattr(reference, "PALETTE_STEPS", n_steps)
    limited = _agree_at_every_worker_count(image, 8, n_steps, **args)
    monkeypatch.setattr(reference, "PALETTE_STEPS", n_steps - 1)
    fewer = quantize(image, 8, backend="numpy", **args)
    assert not np.array_equal(limited.palette, fewer.palette), "the last step allowed was kept"


def test_palette_step_to_an_equally_good_palette_is_not_kept():
    """Gray Oklab: the cluster {29, 30} has its mean between two 8-bit grays,
    equally good; the next palette differs but its error is not strictly lower."""
    colours = np.array([3, 12, 26, 29, 30, 31, 38], dtype=np.uint8)
    image = np.repeat(colours, [3, 4, 2, 1, 1, 1, 1])[None, :]
    q = _agree_at_every_worker_count(image, 6, "tie", seed=1290, steps=100, space="oklab")
    step = next_palette(image, q, "oklab")          # the step that was not kept
    assert not np.array_equal(step, q.palette) and error_of(image, step, "oklab") == q.inertia


def test_palette_entry_without_colours_keeps_its_colour():
    """Converged centres 0 and 1 round to the same gray (10, 10, 10): entry 1
    has no colours in the palette steps and keeps it (moving it anywhere else,
    e.g. black, would take (2, 2, 2) and lower the error: the step must not
    look at it)."""
    pixels = [[10, 10, 10]] * 999 + [[2, 2, 2], [11, 10, 10], [10, 11, 10], [10, 10, 11],
                                      [200, 200, 200]]
    image = np.array(pixels, dtype=np.uint8)[None]
    init = np.array([[9.992] * 3, [31 / 3] * 3, [200] * 3])         # a Lloyd fixed point
    for method in ("histogram", "pixels"):
        q = _agree_at_every_worker_count(image, 3, method, init=init, steps=10,
                                         method=method)
        assert np.array_equal(q.palette, colour.palette_from_centres(q.centers, "rgb", 3))
        assert np.array_equal(q.palette[0], q.palette[1])
