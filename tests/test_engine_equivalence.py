"""Numba kernels vs the NumPy reference, pixel path vs histogram path, 1 vs many threads."""

import numba
import numpy as np
import pytest

from kmeans_fast import _kernels as K
from kmeans_fast import api, quantize

from engine_cases import PHOTOS, photo, random_image, with_channels

KS = (1, 2, 3, 16, 255, 256, 257, 1000)

IMAGES = {
    "1x1": lambda: random_image((1, 1, 3), 0),
    "1xN": lambda: random_image((1, 301, 3), 1),
    "Nx1": lambda: random_image((299, 1, 3), 2),
    "odd-rgb": lambda: random_image((37, 53, 3), 3),  # 1961 pixels: not a multiple of BLOCK
    "few-colours-rgb": lambda: random_image((40, 70, 3), 4, levels=5),  # <= 125 colours
    "gray-2d": lambda: random_image((33, 71), 5),
    "gray-3d": lambda: random_image((20, 50, 1), 6, levels=40),
    "rgba": lambda: random_image((31, 45, 4), 7),
    "rgba-few": lambda: random_image((30, 30, 4), 8, levels=4),
}
for _name in PHOTOS:
    for _c in (1, 3, 4):
        IMAGES[f"{_name}-c{_c}"] = (lambda n=_name, c=_c: with_channels(photo(n), c))

# Every k on the random images and one RGB photo; a spread of k elsewhere keeps
# the reference's running time (k x pixels per step) in bounds.
SOME_KS = (1, 3, 16, 257)
CASES = [(name, k) for name in sorted(IMAGES)
         for k in (KS if not name.startswith(PHOTOS) or name == "astronaut-c3" else SOME_KS)]


def run_all(image, k, init, seed=11, steps=6):
    """Results of every backend x method for the same arguments."""
    return {(backend, method): quantize(image, k, steps=steps, init=init, seed=seed,
                                       backend=backend, method=method)
            for backend in ("numba", "numpy") for method in ("pixels", "histogram")}


def assert_same(a, b, context):
    assert np.array_equal(a.palette, b.palette), context
    assert np.array_equal(a.labels, b.labels), context
    assert a.labels.dtype == b.labels.dtype, context
    assert np.array_equal(a.centers, b.centers), context
    assert a.inertia == pytest.approx(b.inertia, rel=1e-9, abs=1e-9), context
    assert a.history == pytest.approx(b.history, rel=1e-9, abs=1e-9), context
    assert (a.steps_run, a.converged) == (b.steps_run, b.converged), context


@pytest.mark.parametrize("name, k", CASES)
@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_backends_and_paths_agree(name, k, init):
    image = IMAGES[name]()
    results = run_all(image, k, init)
    expected = results[("numpy", "pixels")]
    assert expected.palette.shape[0] <= k
    for key, got in results.items():
        assert_same(got, expected, (name, init, k, key))


@pytest.mark.parametrize("method", ["pixels", "histogram"])
@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_one_thread_equals_all_threads(method, init):
    image = with_channels(photo("astronaut"), 3)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    many = quantize(image, 24, steps=10, init=init, seed=5, method=method)
    numba.set_num_threads(1)
    try:
        one = quantize(image, 24, steps=10, init=init, seed=5, method=method)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert_same(one, many, (method, init))


@pytest.mark.parametrize("n_workers", [1, 2, 3, 7, 64])
def test_kernels_give_the_same_result_for_any_worker_count(n_workers):
    """Kernels take their worker count from their output arrays, so counts above
    the machine's thread count can be checked too."""
    pixels = with_channels(photo("coffee"), 3).reshape(-1, 3)
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 255, size=(19, 3))
    base_labels = np.empty(pixels.shape[0], dtype=np.uint8)
    base_sums, base_counts = np.empty((1, 19, 3), np.int64), np.empty((1, 19), np.int64)
    K.assign_accumulate(pixels, None, centres, base_labels, base_sums, base_counts)

    labels = np.empty_like(base_labels)
    sums = np.empty((n_workers, 19, 3), np.int64)
    counts = np.empty((n_workers, 19), np.int64)
    K.assign_accumulate(pixels, None, centres, labels, sums, counts)
    assert np.array_equal(labels, base_labels)
    assert np.array_equal(sums.sum(0), base_sums[0])
    assert np.array_equal(counts.sum(0), base_counts[0])

    bitmap = K.presence_bitmap(pixels, n_workers)
    assert np.array_equal(bitmap, K.presence_bitmap(pixels, 1))
    table, n_distinct = K.rank_table(bitmap)
    for groups in {1, min(n_workers, 3)}:
        c = np.zeros((groups, n_distinct), np.int32)
        K.table_counts(pixels, table, c, n_workers)
        assert c.sum() == pixels.shape[0]
        _, expected = np.unique(pixels, axis=0, return_counts=True)
        assert np.array_equal(c.sum(0), expected)


def test_histogram_matches_numpy_unique():
    for n_ch in (1, 3, 4):
        image = with_channels(photo("chelsea"), n_ch)
        pixels = image.reshape(-1, n_ch) if image.ndim == 3 else image.reshape(-1, 1)
        hist = api._Histogram(np.ascontiguousarray(pixels), 2)
        colours, counts = np.unique(pixels, axis=0, return_counts=True)
        assert np.array_equal(hist.colours, colours)  # lexicographic order
        assert np.array_equal(hist.counts, counts)
        labels = np.empty(pixels.shape[0], dtype=np.uint16)
        hist.remap(np.ascontiguousarray(pixels), np.arange(len(colours), dtype=np.int64), labels)
        assert np.array_equal(hist.colours[labels], pixels)


def test_kmeanspp_matches_reference():
    from kmeans_fast import reference

    pixels = with_channels(photo("astronaut"), 3).reshape(-1, 3)
    _, colours, counts = reference.distinct_colours(pixels)
    for k in (1, 2, 7, 64):
        a = api._kmeanspp(colours, counts, k, np.random.default_rng(k))
        b = reference.init_kmeanspp(colours, counts, k, np.random.default_rng(k))
        assert np.array_equal(a, b)
        assert len(np.unique(a)) == k  # distinct colours


def test_empty_clusters_are_reseeded_identically():
    image = with_channels(photo("coffee"), 3)
    # Duplicated and far-away initial centres leave clusters empty.
    init = np.array([[0, 0, 0], [0, 0, 0], [400, 400, 400], [-90, 0, 0],
                     [128, 128, 128], [128, 128, 128]], dtype=np.float64)
    results = {(b, m): quantize(image, 6, init=init, steps=12, backend=b, method=m)
               for b in ("numba", "numpy") for m in ("pixels", "histogram")}
    expected = results[("numpy", "pixels")]
    for key, got in results.items():
        assert_same(got, expected, key)
    used = np.unique(expected.labels)
    assert len(used) == 6, "every re-seeded centre should win pixels"
    assert len(np.unique(expected.centers, axis=0)) == 6
