"""Kernels at forced worker counts, the tree against a full search, and the
bugs a review planted that the old suite missed (each test below names its bug)."""

import functools

import numpy as np
import pytest

from kmeans_fast import _kernels as K
from kmeans_fast import _numba_backend as nb
from kmeans_fast import colour, quantize, reference

from engine_cases import WORKERS, photo, random_image, with_channels


def full_search(points, weights, centers):
    """Labels, sums and counts of a full search, one worker."""
    k, n_ch = centers.shape
    labels = np.empty(points.shape[0], np.int32)
    sums = np.empty((1, k, n_ch), np.int64)
    counts = np.empty((1, k), np.int64)
    K.assign_accumulate(points, weights, centers, labels, sums, counts)
    return labels, sums[0], counts[0]


@functools.lru_cache(maxsize=1)
def rgb_codes():
    """The code of every RGB key (index: key), from the tables (read-only)."""
    keys = np.arange(256 ** 3)
    codes = K.CODES[3]
    codes = codes[0][keys >> 16] | codes[1][(keys >> 8) & 255] | codes[2][keys & 255]
    codes.flags.writeable = False
    return codes


def rgb_keys_of_codes(codes):
    """The keys of RGB codes (the inverse of :func:`rgb_codes`)."""
    inverse = np.empty(256 ** 3, dtype=np.int64)
    inverse[rgb_codes()] = np.arange(256 ** 3)
    return inverse[codes]


def tied_points():
    """Integer points and centers with many exact ties: centers two apart on a lattice."""
    g = np.arange(0, 12, dtype=np.int32)
    points = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    weights = np.random.default_rng(0).integers(1, 50, len(points)).astype(np.int64)
    c = np.arange(1, 12, 4, dtype=np.float64)
    centers = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    return points, weights, centers


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("case", ["photo", "random", "ties", "oklab", "rgba", "gray"])
def test_tree_assignment_equals_a_full_search(workers, case):
    rng = np.random.default_rng(1)
    if case == "ties":
        points, weights, centers = tied_points()
    else:
        image = {"photo": lambda: photo("coffee"), "random": lambda: random_image((60, 80, 3), 2),
                 "oklab": lambda: photo("astronaut"), "rgba": lambda: with_channels(
                     photo("chelsea"), 4), "gray": lambda: random_image((60, 80), 3)}[case]()
        pixels = image.reshape(-1, 1 if image.ndim == 2 else image.shape[2])
        colours, weights = reference.histogram(pixels)
        points = colour.features(colours, "oklab" if case == "oklab" else "rgb")
        centers = points[rng.choice(len(points), 23, replace=False)].astype(np.float64)
        centers += rng.uniform(-3, 3, centers.shape) * np.abs(points).max() / 255
    tree = nb.Tree(points, weights)
    assert tree.n_leaves > 3 * 7 or case == "gray"      # every worker gets subtrees
    expected = full_search(points, weights, centers)
    labels = np.empty(len(points), np.int32)
    with nb.forced_workers(workers):
        sums, counts = tree.assign(centers, labels)
    assert np.array_equal(labels, expected[0])
    assert np.array_equal(sums, expected[1]) and np.array_equal(counts, expected[2])
    if case == "ties":
        assert (labels == 0).sum() > 0 and len(np.unique(labels)) == len(centers)


@pytest.mark.parametrize("n_feat", [1, 3, 4])
def test_feature_range_is_the_least_and_greatest_value(n_feat):
    # the tree's grid cells are indexed by offsets from these: a span too small
    # would read past the end of its cell table
    rng = np.random.default_rng(n_feat)
    for n_points in (1, 2, 37, 1000):
        points = rng.integers(-2**20, 2**20, (n_points, n_feat)).astype(np.int32)
        points[rng.integers(n_points), 0] = -2**31          # extremes anywhere
        points[rng.integers(n_points), -1] = 2**31 - 1
        low, high = K.feature_range(points)
        assert np.array_equal(low, points.min(axis=0)) and low.dtype == np.int64
        assert np.array_equal(high, points.max(axis=0)) and high.dtype == np.int64


@pytest.mark.parametrize("workers", WORKERS)
def test_full_search_kernel_sums_every_worker(workers):
    """Planted bug 'keep only worker 0's partial sums': the pixel path's sums."""
    pixels = photo("coffee").reshape(-1, 3)
    centers = np.random.default_rng(0).uniform(0, 255, size=(19, 3))
    expected = full_search(pixels, None, centers)
    labels = np.empty(pixels.shape[0], np.int32)
    sums = np.empty((workers, 19, 3), np.int64)
    counts = np.empty((workers, 19), np.int64)
    K.assign_accumulate(pixels, None, centers, labels, sums, counts)
    assert np.array_equal(labels, expected[0])
    assert np.array_equal(sums.sum(0), expected[1])
    assert np.array_equal(counts.sum(0), expected[2])
    assert counts.sum() == pixels.shape[0]


@pytest.mark.parametrize("sorted_below", [0, 1 << 30])
@pytest.mark.parametrize("workers", WORKERS)
def test_histogram_kernels_at_any_worker_count(workers, sorted_below, monkeypatch):
    monkeypatch.setattr(nb, "SORTED_BELOW", sorted_below)      # bitmap, then sorted keys
    for n_ch in (1, 3, 4):
        image = with_channels(photo("chelsea"), n_ch)
        pixels = np.ascontiguousarray(image.reshape(-1, n_ch))
        with nb.forced_workers(workers):
            colours, counts, lookup = nb.histogram(pixels)
            labels = np.empty(pixels.shape[0], np.uint16)
            lookup.remap(pixels, np.arange(len(colours), dtype=np.int64), labels)
        expected_colours, expected_counts = np.unique(pixels, axis=0, return_counts=True)
        assert np.array_equal(colours, expected_colours)   # key order = lexicographic
        assert np.array_equal(counts, expected_counts)
        assert np.array_equal(colours[labels], pixels)


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("n_ch", [1, 3])
def test_byte_counters_that_wrap_are_counted_exactly(workers, n_ch):
    # counts of 255, 256 (a byte counter back at 0), 257, 512, 513 and 1,
    # in pixel groups (gray: 256 keys) and in code ranges (RGB: 16 MiB codes)
    rng = np.random.default_rng(n_ch)
    wanted = [255, 256, 257, 512, 513, 1, 256 * 9]
    n_extra = 249 if n_ch == 1 else 60000                   # gray: every key
    keys = rng.choice(256 ** n_ch, size=len(wanted) + n_extra, replace=False)
    if n_ch == 3:           # the first and last colours of every task's code range
        words = 256 ** 3 // 64
        edges = {words * r // workers * 64 + d for r in range(workers + 1) for d in (-1, 0)}
        edges = np.array(sorted(e for e in edges if 0 <= e < 256 ** 3))
        edges = rgb_keys_of_codes(edges)
        keys = np.concatenate([keys, np.setdiff1d(edges, keys)])
        n_extra = len(keys) - len(wanted)
    extra = rng.integers(250, 300, n_extra) if n_ch == 1 else rng.integers(1, 3, n_extra)
    pixel_keys = rng.permutation(np.repeat(keys, np.concatenate([wanted, extra])))
    assert len(pixel_keys) >= nb.SORTED_BELOW                   # the byte-counter path
    shifts = 8 * np.arange(n_ch - 1, -1, -1)
    pixels = ((pixel_keys[:, None] >> shifts) & 255).astype(np.uint8)
    with nb.forced_workers(workers):
        colours, counts, _ = nb.histogram(np.ascontiguousarray(pixels))
    expected_colours, expected_counts = np.unique(pixels, axis=0, return_counts=True)
    assert np.array_equal(colours, expected_colours)
    assert np.array_equal(counts, expected_counts)
    assert set(wanted) <= set(counts.tolist())


@pytest.mark.parametrize("workers", WORKERS)
def test_tree_order_is_the_references_at_any_worker_count(workers):
    """Planted bug: 'each share's points placed before the next share's, cell
    by cell reversed' (a counting sort that is not stable across shares)."""
    for name, space in (("astronaut", "rgb"), ("chelsea", "oklab")):
        colours, counts = reference.histogram(photo(name).reshape(-1, 3))
        points = colour.features(colours, space)
        with nb.forced_workers(workers):
            tree = nb.Tree(points, counts)
        order = reference.tree_order(points)
        assert np.array_equal(tree.order, order)
        assert np.array_equal(tree.points, points[order])
        assert np.array_equal(tree.weights, counts[order])


@pytest.mark.parametrize("arrange", [True, False])
@pytest.mark.parametrize("k", [1, 2, 7, 64])
def test_kmeanspp_seeding_equals_the_reference(arrange, k):
    colours, counts = reference.histogram(photo("astronaut").reshape(-1, 3))
    points = colour.features(colours, "rgb")
    tree = nb.Tree(points, counts, arrange=arrange)
    got = tree.kmeanspp(k, np.random.default_rng(k))
    expected = reference.greedy_kmeanspp(points, counts, k, np.random.default_rng(k),
                                         arrange=arrange)
    assert np.array_equal(got, expected)
    assert len(np.unique(got)) == k                  # distinct colours


def test_kmeanspp_breaks_potential_ties_by_draw_order():
    """Symmetric colours around a heavy middle one: two different candidates
    often have exactly the same potential, and the first drawn must win."""
    offsets = np.array([[0, 0, 0], [-40, 0, 0], [40, 0, 0], [0, -40, 0], [0, 40, 0]])
    points = (128 + offsets).astype(np.int32)
    counts = np.array([1000, 7, 7, 7, 7], dtype=np.int64)
    tree = nb.Tree(points, counts)
    seen = set()
    for seed in range(40):
        got = tree.kmeanspp(3, np.random.default_rng(seed))
        expected = reference.greedy_kmeanspp(points, counts, 3, np.random.default_rng(seed))
        assert np.array_equal(got, expected), seed
        seen.add(tuple(got))
    assert len(seen) > 2


@pytest.mark.parametrize("workers", WORKERS)
def test_farthest_points_at_any_worker_count(workers):
    points = colour.features(reference.histogram(photo("coffee").reshape(-1, 3))[0], "rgb")
    centers = np.array([[10.0, 20, 30], [200, 100, 50], [128, 128, 128]])
    labels = full_search(points, None, centers)[0]
    dist = np.empty((workers, 5))
    index = np.empty((workers, 5), np.int64)
    K.farthest(points, labels, centers, 5, dist, index)
    d, i = dist.ravel(), index.ravel()
    keep = i >= 0
    got = i[keep][np.lexsort((i[keep], -d[keep]))][:5]
    own = ((points - centers[labels]) ** 2).sum(1)
    assert np.array_equal(got, np.lexsort((np.arange(len(own)), -own))[:5])


# --------------------------------------------------------------------------
# the planted bugs of the review (issue 8)
# --------------------------------------------------------------------------
def test_inertia_and_sse_are_the_squared_errors_of_the_labels():
    """Planted bug: a wrong inertia formula.  Both are recomputed here by brute force."""
    for n_ch, space in ((3, "rgb"), (1, "rgb"), (4, "rgb"), (3, "oklab"), (4, "oklab")):
        image = with_channels(photo("astronaut"), n_ch, clear=True)
        pixels = image.reshape(-1, n_ch).astype(np.int64)
        for backend in ("numba", "numpy"):
            q = quantize(image, 9, steps=5, seed=2, space=space, backend=backend)
            painted = q.palette[q.labels.ravel()].astype(np.int64)
            assert q.sse == ((pixels - painted) ** 2).sum()
            f_pixels = colour.features(image.reshape(-1, n_ch), space).astype(np.int64)
            f_painted = colour.features(q.palette, space)[q.labels.ravel()].astype(np.int64)
            assert q.inertia == ((f_pixels - f_painted) ** 2).sum()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_random_init_draws_colours_by_pixel_count(backend):
    """Planted bug: random init ignoring pixel counts.  One colour holds 95% of
    the pixels among 2000 rare ones: drawn by count it is almost always among two
    initial colours; drawn uniformly, almost never."""
    rare = random_image((1, 2000, 3), 5)
    image = np.concatenate([np.broadcast_to([[7, 200, 99]], (38000, 3)), rare[0]])
    image = image.reshape(200, 200, 3).astype(np.uint8)
    hits = 0
    for seed in range(20):
        q = quantize(image, 2, steps=0, init="random", seed=seed, backend=backend)
        hits += (q.palette == [7, 200, 99]).all(axis=1).any()
    assert hits >= 17


def test_auto_takes_the_histogram_unless_most_pixels_are_distinct():
    """Planted bug: 'auto' always taking the pixel path."""
    few = random_image((64, 64, 3), 0, levels=6)
    noisy = random_image((64, 64, 3), 1)
    assert quantize(few, 8).method == "histogram"
    assert quantize(noisy, 8).method == "pixels"
    assert quantize(noisy, 8, space="oklab").method == "histogram"   # no pixel path there
    assert quantize(with_channels(noisy, 4), 8).method == "histogram"
    assert quantize(few, 8, backend="numpy").method == "histogram"
    assert quantize(noisy, 8, backend="numpy").method == "pixels"


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_tol_stops_the_steps(backend):
    """Planted bug: ignoring tol."""
    image = photo("chelsea")
    exact = quantize(image, 16, steps=60, seed=3, backend=backend)
    loose = quantize(image, 16, steps=60, seed=3, tol=1e6, backend=backend)
    assert loose.converged and loose.steps_run == 1
    assert exact.steps_run > 3
    shift = quantize(image, 16, steps=60, seed=3, tol=50.0, backend=backend)
    assert loose.steps_run <= shift.steps_run <= exact.steps_run
    assert shift.steps_run < exact.steps_run or exact.steps_run == 60
