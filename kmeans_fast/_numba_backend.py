"""The Numba backend: the algorithm of :mod:`kmeans_fast.reference`, on the
compiled kernels of :mod:`kmeans_fast._kernels`.

Python owns the loop (initial centers, Lloyd steps, empty clusters,
convergence); each kernel does one pass.  This module shares no code with the
reference: the tests hold the two against each other.
"""

from __future__ import annotations

import contextlib
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from . import _kernels as K
from . import colour

__all__ = ["Lookup", "Tree", "histogram", "fit", "nearest_labels", "forced_workers"]

# k-means++ runs on the tree's leaves (each at its points' mean) when there are
# at least this many leaves per center; the best of N_INIT seedings is kept.
CORESET_MIN_LEAVES = 8
N_INIT = 3
# Most palette steps after the Lloyd steps' fixed point (reference, step 9).
PALETTE_STEPS = 8
# Images of fewer pixels find their colours by sorting (no fixed bitmap cost).
SORTED_BELOW = 1 << 16

_forced = None


@contextlib.contextmanager
def forced_workers(n_workers):
    """Run every kernel with exactly ``n_workers`` workers (for tests: tiny
    images otherwise get one worker and prove nothing about reductions)."""
    global _forced
    saved, _forced = _forced, int(n_workers)
    try:
        yield
    finally:
        _forced = saved


def _workers(n_points):
    """Worker count for kernels over n_points: the threads, but no more than one
    per 64 Ki points.  Results never depend on it."""
    if _forced is not None:
        return _forced
    return min(numba.get_num_threads(), 1 + n_points // 65536)


def _label_dtype(k):
    return np.uint8 if k <= 256 else np.uint16


# --------------------------------------------------------------------------
# colour histogram
# --------------------------------------------------------------------------
class Lookup:
    """The distinct colours of an image (sorted by key), their counts, and the
    structure that maps each pixel to its colour's index.

    C <= 3: one pass counts every colour in a byte per possible colour (with
    the counts that wrapped past 255 kept apart); the keys present form a
    bitmap interleaved with rank prefixes (``table``: a colour's index in one
    cache line, for dithering), and the remap writes a label per possible
    colour and reads it per pixel.  Counters and labels sit at the colours'
    codes (:data:`kmeans_fast._kernels.CODES`: near colours near in memory).
    C = 4, and small images (below :data:`SORTED_BELOW` pixels, where the
    bitmap's fixed cost would exceed sorting): sorted 32-bit keys (binary
    search).
    """

    def __init__(self, pixels):
        n_ch = pixels.shape[1]
        self.n_workers = n_workers = _workers(pixels.shape[0])
        if n_ch <= 3 and pixels.shape[0] >= SORTED_BELOW:
            # A byte counter per possible colour for each pixel group: as many
            # groups as fit in half the image's size (pixel groups parallelise
            # the count; key ranges parallelise it without more memory).
            n_pixels = pixels.shape[0]
            n_keys = 1 << (8 * n_ch)
            n_groups = int(max(1, min(n_workers, pixels.nbytes // 2 // n_keys)))
            n_tasks = n_groups * max(1, n_workers // n_groups)
            counts = np.zeros((n_groups, n_keys), dtype=np.uint8)
            spill = np.empty((n_tasks, -(-n_pixels // n_groups) // 256 + 1), dtype=np.int64)
            n_spill = np.empty(n_tasks, dtype=np.int64)
            K.count_keys(pixels, counts, spill, n_spill, n_workers)
            self.table, self.colours, self.counts = counted_histogram(counts, spill, n_spill,
                                                                      n_ch)
            self.keys = None
        else:
            keys = np.empty(pixels.shape[0], dtype=np.uint32)
            K.pack_keys(pixels, keys, n_workers)
            keys.sort()
            self.table = None
            self.keys, self.counts = K.sorted_distinct(keys)
            del keys
            self.colours = np.empty((self.keys.shape[0], n_ch), dtype=np.uint8)
            K.unpack_keys(self.keys, n_ch, self.colours)

    def remap(self, pixels, colour_labels, labels):
        """labels[p] = colour_labels[colour index of pixel p]."""
        colour_labels = colour_labels.astype(labels.dtype, copy=False)
        if self.keys is None:
            # a label per possible colour (16 MiB for RGB, k <= 256), at its
            # code: one memory access per pixel, near the last pixel's
            lut = np.empty(1 << (8 * pixels.shape[1]), dtype=labels.dtype)
            K.code_labels(self.colours, colour_labels, lut)
            K.code_remap(pixels, lut, labels, self.n_workers)
        else:
            K.sorted_remap(pixels, self.keys, colour_labels, labels, self.n_workers)


def counted_histogram(counts, spill, n_spill, n_ch):
    """(rank table, colours, counts) from the outputs of
    :func:`kmeans_fast._kernels.count_keys`."""
    table, n_distinct = K.rank_table(K.key_bitmap(counts, spill, n_spill))
    colours = np.empty((n_distinct, n_ch), dtype=np.uint8)
    totals = np.empty(n_distinct, dtype=np.int64)
    K.table_histogram(table, counts, spill, n_spill, colours, totals)
    return table, colours, totals


def histogram(pixels):
    """(colours, counts, lookup) of an (N, C) uint8 pixel array."""
    lookup = Lookup(pixels)
    return lookup.colours, lookup.counts, lookup


# --------------------------------------------------------------------------
# nearest palette entry
# --------------------------------------------------------------------------
def nearest_labels(points, palette_features, weights=None):
    """Nearest palette entry (ties: lowest index) of every point, int32.

    points : (M, C) uint8 or int32 features; palette_features : (k, C) float64.
    """
    n_workers = _workers(points.shape[0])
    k, n_ch = palette_features.shape
    labels = np.empty(points.shape[0], dtype=np.int32)
    sums = np.empty((n_workers, k, n_ch), dtype=np.int64)
    counts = np.empty((n_workers, k), dtype=np.int64)
    K.assign_accumulate(np.ascontiguousarray(points), weights, palette_features, labels,
                        sums, counts)
    return labels


# --------------------------------------------------------------------------
# initial centers
# --------------------------------------------------------------------------
class Tree:
    """The tree of :mod:`kmeans_fast._kernels` over weighted integer points:
    their order, boxes and weighted sums (see the reference, step 5).

    ``arrange=False`` keeps the points in the order given (already spatially
    coherent: the coreset of another tree)."""

    def __init__(self, points, weights, *, arrange=True):
        n_points, n_feat = points.shape
        if arrange:
            bits = _tree_bits(n_feat)
            points = np.ascontiguousarray(points, dtype=np.int32)
            low, high = K.feature_range(points)
            span = high - low + 1
            offsets = np.arange(int(span.max()), dtype=np.int64)
            cell_of = np.stack([offsets * (1 << bits) // s for s in span])
            self.points = np.empty((n_points, n_feat), dtype=np.int32)
            self.weights = np.empty(n_points, dtype=np.int64)
            self.order = K.tree_arrange(points, weights, low, cell_of, bits, self.points,
                                        self.weights, _workers(n_points))
        else:
            self.points = np.ascontiguousarray(points, dtype=np.int32)
            self.weights = np.ascontiguousarray(weights, dtype=np.int64)
            self.order = np.arange(n_points)
        self.n_leaves = n_leaves = -(-n_points // K.LEAF)
        self.size = size = 1 << max(0, (n_leaves - 1).bit_length())
        self.lo = np.empty((2 * size, n_feat), dtype=np.int32)
        self.hi = np.empty((2 * size, n_feat), dtype=np.int32)
        self.sums = np.empty((2 * size, n_feat), dtype=np.int64)
        self.wsum = np.empty(2 * size, dtype=np.int64)
        K.build_tree(self.points, self.weights, size, self.lo, self.hi, self.sums, self.wsum)
        box = np.concatenate([self.lo[1], self.hi[1]]).astype(np.int64)
        self.norm2 = float(n_feat * float(np.abs(box).max()) ** 2)   # bound on |x|^2

    def assign(self, centers, labels=None):
        """Exact nearest-center sums and weights; labels (in the caller's point
        order) too when asked for."""
        k, n_feat = centers.shape
        n_workers = _workers(self.weights.shape[0])
        out_sums = np.empty((n_workers, k, n_feat), dtype=np.int64)
        out_counts = np.empty((n_workers, k), dtype=np.int64)
        tree_labels = np.empty(self.weights.shape[0] if labels is not None else 0, np.int32)
        centers = np.ascontiguousarray(centers, dtype=np.float64)
        # squared distances here are below 4 * max(|x|^2, |c|^2): their float64
        # rounding error is below 1e-14 of that, far under this margin
        scale = max(self.norm2, float((centers ** 2).sum(axis=1).max()))
        K.assign_tree(self.points, self.weights, self.size, self.lo, self.hi, self.sums,
                      self.wsum, centers, 4e-9 * scale, tree_labels, out_sums, out_counts)
        if labels is not None:
            labels[self.order] = tree_labels
        return out_sums.sum(axis=0), out_counts.sum(axis=0)

    @staticmethod
    def kmeanspp_draws(k, rng):
        """The uniform draws of one k-means++ seeding, in the reference's order."""
        return rng.random(), rng.random((k - 1, 2 + int(math.log(k))))

    def kmeanspp(self, k, rng=None, *, draws=None):
        """Indices (in the caller's point order) of k points chosen by greedy
        k-means++, with draws from ``rng`` or given (:meth:`kmeanspp_draws`)."""
        # D^2 weights stay below 2**63 on any image: features above 12 bits are
        # shifted right (only the sampling sees this; Lloyd uses the full features)
        root = np.abs(np.concatenate([self.lo[1], self.hi[1]]).astype(np.int64))
        shift = max(0, int(root.max()).bit_length() - 12)
        first_u, draws = draws if draws is not None else self.kmeanspp_draws(k, rng)
        chosen = np.empty(k, dtype=np.int64)
        K.kmeanspp(self.points >> shift, self.weights, self.size, self.lo >> shift,
                   self.hi >> shift, first_u, draws, chosen)
        return self.order[chosen]

    def coreset(self):
        """Each leaf's points as one: (rounded weighted mean, total weight), in leaf order."""
        leaves = slice(self.size, self.size + self.n_leaves)
        weights = self.wsum[leaves]
        points = np.rint(self.sums[leaves] / weights[:, None]).astype(np.int32)
        return points, weights


def _tree_bits(n_feat):
    """Bits per feature of the grid cells that order the tree."""
    return max(1, min(8, 15 // n_feat))


def _initial_centers(points, counts, k, init, rng, tree):
    """Explicit centers; k random distinct points; or k-means++ (reference, step 5):
    the best of N_INIT greedy seedings, on the tree's leaf means when there are
    enough leaves."""
    if isinstance(init, np.ndarray):
        return init.astype(np.float64)
    if init == "random":
        index = rng.choice(points.shape[0], size=k, replace=False, p=counts / counts.sum())
        return points[index].astype(np.float64)
    if tree.n_leaves >= CORESET_MIN_LEAVES * k:
        points, counts = tree.coreset()
        tree = Tree(points, counts, arrange=False)
    sq_norm_total = _sq_norm_total(points, counts)
    # the seedings are serial kernels without the GIL: run them side by side
    # (draws made first, in the order a loop would make them)
    draws = [tree.kmeanspp_draws(k, rng) for _ in range(N_INIT)]
    with ThreadPoolExecutor(max_workers=min(N_INIT, os.cpu_count() or 1)) as pool:
        seedings = list(pool.map(lambda d: tree.kmeanspp(k, draws=d), draws))
    best, best_cost = None, None
    for index in seedings:
        centers = points[index].astype(np.float64)
        cost = _objective(sq_norm_total, centers, *tree.assign(centers))
        if best is None or cost < best_cost:
            best, best_cost = centers, cost
    return best


def _refill_empty(points, labels, centers, empty):
    """Move the centers of empty clusters to the distinct points farthest from
    the (new) center of the cluster the step assigned them to: distance
    descending, then point index (colour key)."""
    n_workers = _workers(points.shape[0])
    n_want = empty.size
    dist = np.empty((n_workers, n_want))
    index = np.empty((n_workers, n_want), dtype=np.int64)
    K.farthest(points, labels, centers, n_want, dist, index)
    dist, index = dist.ravel(), index.ravel()
    keep = index >= 0
    dist, index = dist[keep], index[keep]
    pick = index[np.lexsort((index, -dist))[:n_want]]
    centers[empty[:pick.size]] = points[pick]


def weighted_sq_error(points, ref, labels, weights):
    """sum(weights * |points - ref[labels]|^2) as an exact Python int."""
    out = np.empty((_workers(points.shape[0]), 2), dtype=np.int64)
    K.weighted_sq_error(np.ascontiguousarray(points), np.ascontiguousarray(ref),
                        np.ascontiguousarray(labels, dtype=np.int32), weights, out)
    return (int(out[:, 0].sum()) << K.ERROR_SPLIT) + int(out[:, 1].sum())


def _sq_norm_total(points, weights):
    """sum(weights * |points|^2), exact."""
    zero = np.zeros((1, points.shape[1]), dtype=points.dtype)
    return weighted_sq_error(points, zero, np.zeros(points.shape[0], np.int32), weights)


def _objective(sq_norm_total, centers, sums, counts):
    """Squared error of an assignment, from its exact statistics."""
    t = (counts[:, None] * centers - 2.0 * sums) * centers
    return max(0.0, float(sq_norm_total) + float(t.sum()))


# --------------------------------------------------------------------------
# k-means on a histogram (or on the pixels)
# --------------------------------------------------------------------------
def lloyd(points, counts, centers, *, steps, tol, progress, tree, pixels=None):
    """Lloyd steps from ``centers``: over the histogram's weighted points (on
    their tree), or over the pixels when given (same points, weight 1 each).

    Returns (centers, steps_run, converged, history, fixed): ``fixed`` when the
    last step left the centers exactly where they were.
    """
    k, n_ch = centers.shape
    sq_norm_total = _sq_norm_total(points, counts)
    if pixels is not None:
        n_workers = _workers(pixels.shape[0])
        pixel_labels = np.empty(pixels.shape[0], dtype=_label_dtype(k))
        part_sums = np.empty((n_workers, k, n_ch), dtype=np.int64)
        part_counts = np.empty((n_workers, k), dtype=np.int64)
    history = []
    converged = fixed = False
    steps_run = 0
    if progress is not None:
        progress(0, steps)
    for _ in range(steps):
        if pixels is None:
            sums, cnt = tree.assign(centers)
        else:
            K.assign_accumulate(pixels, None, centers, pixel_labels, part_sums, part_counts)
            sums, cnt = part_sums.sum(axis=0), part_counts.sum(axis=0)
        history.append(_objective(sq_norm_total, centers, sums, cnt))
        steps_run += 1
        if progress is not None:
            progress(steps_run, steps)
        new = centers.copy()
        filled = cnt > 0
        new[filled] = sums[filled] / cnt[filled, None]
        empty = np.flatnonzero(~filled)
        if empty.size:
            step_labels = np.empty(points.shape[0], dtype=np.int32)
            tree.assign(centers, step_labels)
            _refill_empty(points, step_labels, new, empty)
        moved = float(((new - centers) ** 2).sum())
        centers = new
        if moved <= tol:
            converged, fixed = True, moved == 0.0
            break
    return centers, steps_run, converged, history, fixed


def _exact_objective(sq_norm_total, palette_features, sums, counts):
    """Squared error of an assignment to integer centers, as an exact Python int."""
    mu = palette_features.astype(object)
    t = (counts.astype(object)[:, None] * mu - 2 * sums.astype(object)) * mu
    return sq_norm_total + int(t.sum())


def _palette_steps(points, counts, centers, space, n_ch, tree):
    """Lloyd steps whose centers are 8-bit colours, from the Lloyd steps' fixed
    point (reference, step 9).  Returns the palette."""
    sq_norm_total = _sq_norm_total(points, counts)
    palette = colour.palette_from_centres(centers, space, n_ch)
    feats = colour.features(palette, space)
    sums, cnt = tree.assign(feats.astype(np.float64))
    error = _exact_objective(sq_norm_total, feats, sums, cnt)
    means = centers.copy()
    for _ in range(PALETTE_STEPS):
        filled = cnt > 0
        means[filled] = sums[filled] / cnt[filled, None]
        new_palette = colour.palette_from_centres(means, space, n_ch)
        if np.array_equal(new_palette, palette):
            break
        new_feats = colour.features(new_palette, space)
        new_sums, new_cnt = tree.assign(new_feats.astype(np.float64))
        new_error = _exact_objective(sq_norm_total, new_feats, new_sums, new_cnt)
        if new_error >= error:
            break
        palette, sums, cnt, error = new_palette, new_sums, new_cnt, new_error
    return palette


def fit(colours, counts, n_colors, *, steps, init, seed, space, tol, progress=None,
        pixels=None):
    """k-means palette of a histogram; see :func:`kmeans_fast.reference.fit`.

    Returns a dict: palette, centers, colour_labels (nearest palette entry of
    every distinct colour), inertia, sse, steps_run, converged, history,
    reserved.
    """
    n_ch = colours.shape[1]
    feats = colour.features(colours, space)
    # fully transparent colours are one colour: (0, 0, 0, 0), key 0, first
    if n_ch == 4 and (colours[:, 3] == 0).any():
        clear = colours[:, 3] == 0
        keep = np.flatnonzero(~clear)
        pts_colours = np.concatenate([np.zeros((1, 4), np.uint8), colours[keep]])
        pts_counts = np.concatenate([[counts[clear].sum()], counts[keep]])
        transparent = True
    else:
        pts_colours, pts_counts, transparent = colours, counts, False
    n_points = pts_colours.shape[0]
    tree = None
    if n_colors >= n_points:
        palette = pts_colours.copy()
        centers = colour.features(palette, space).astype(np.float64)
        result = dict(palette=palette, centers=centers, steps_run=0, converged=True,
                      history=[], reserved=False)
    else:
        reserved = transparent and n_colors >= 2
        free_colours = pts_colours[1:] if reserved else pts_colours
        free_counts = pts_counts[1:] if reserved else pts_counts
        points = colour.features(free_colours, space)
        k = n_colors - 1 if reserved else n_colors
        rng = np.random.default_rng(seed)
        if isinstance(init, np.ndarray) and not (space == "rgb" and n_ch in (1, 3)):
            init = colour.features(np.clip(np.rint(init), 0, 255).astype(np.uint8),
                                   space).astype(np.float64)
        tree = Tree(points, free_counts)
        centers = _initial_centers(points, free_counts, k, init, rng, tree)
        centers, steps_run, converged, history, fixed = lloyd(
            points, free_counts, centers, steps=steps, tol=tol, progress=progress,
            tree=tree, pixels=pixels)
        if fixed:
            palette = _palette_steps(points, free_counts, centers, space, n_ch, tree)
        else:
            palette = colour.palette_from_centres(centers, space, n_ch)
        if reserved:
            palette = np.concatenate([np.zeros((1, 4), np.uint8), palette])
            centers = np.concatenate([np.zeros((1, 4)), centers])
        result = dict(palette=palette, centers=centers, steps_run=steps_run,
                      converged=converged, history=history, reserved=reserved)
    pal_feats = colour.features(result["palette"], space)
    if tree is not None and tree.weights.shape[0] == colours.shape[0]:
        labels = np.empty(colours.shape[0], dtype=np.int32)   # the tree holds every colour
        tree.assign(pal_feats.astype(np.float64), labels)
    else:
        labels = nearest_labels(feats, pal_feats.astype(np.float64))
    result["colour_labels"] = labels
    # exact squared errors of the nearest-entry assignment: in the features,
    # and in the image's own channel values (what PSNR measures)
    result["inertia"] = weighted_sq_error(feats, pal_feats, labels, counts)
    result["sse"] = (result["inertia"] if space == "rgb" and n_ch in (1, 3) else
                     weighted_sq_error(colours, result["palette"], labels, counts))
    return result
