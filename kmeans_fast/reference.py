"""Plain NumPy reference implementation of kmeans_fast's k-means.

This module is the ``backend="numpy"`` of :func:`kmeans_fast.quantize` and the
yardstick the tests hold the Numba kernels against.  It implements the same
algorithm with the same arithmetic, written as plainly as NumPy allows, and
imports nothing from the kernels or the public API so a bug cannot hide in both.

The algorithm, step by step (the Numba backend follows it exactly):

1. **Distinct colours.**  Every pixel's channels are packed into one integer key
   (lexicographic: channel 0 is the most significant byte).  The sorted distinct
   keys and their pixel counts form the colour histogram.  Initialisation always
   works on this histogram, so both paths start from the same centres.
2. **Few colours.**  When ``n_colors`` is at least the number of distinct
   colours, the palette is exactly the distinct colours (in key order) and the
   error is zero.
3. **Initial centres** (``rng = numpy.random.default_rng(seed)``), unless given
   explicitly as an array:

   * ``"random"``: ``rng.choice(D, size=k, replace=False, p=counts / N)`` - k
     distinct colours, each drawn with probability proportional to its pixel
     count (the classic "k random pixels", without duplicate colours).
   * ``"kmeans++"``: greedy k-means++ weighted by pixel counts, in exact integer
     arithmetic.  The first centre is the colour of pixel ``rng.integers(0, N)``
     (pixels ordered by colour key).  Each further centre draws
     ``2 + int(log(k))`` candidates with ``rng.integers(0, potential, size)``
     mapped through the cumulative sum of ``count * closest_sq_distance``
     (``searchsorted(..., side="right")``) and keeps the candidate that lowers the
     potential most (ties: the first drawn).  Squared distances between integer
     colours are integers, so every sum is exact and order-independent.
4. **Lloyd steps.**  Each step assigns every point to its nearest centre by the
   squared Euclidean distance computed in float64 as
   ``((x0 - c0)**2 + (x1 - c1)**2) + ...`` (channels added in order; ties go to
   the lowest centre index), sums each cluster's channel values and weights
   exactly in integers, and moves each centre to ``sum / count`` (float64).
   The points are the pixels (``method="pixels"``, weight 1) or the distinct
   colours weighted by their counts (``method="histogram"``): the same k-means.
5. **Empty clusters.**  If clusters are left empty, they are re-seeded, lowest
   index first, with the distinct colours farthest from their (new) centres;
   ties go to the smaller colour key.
6. **Stopping.**  After each update the total squared centre shift is compared
   with ``tol``; ``shift <= tol`` stops the loop as converged (with ``tol=0``
   this means the centres, hence the labels, can no longer change).
7. **Final assignment.**  Labels are the nearest final centre of every pixel,
   the palette is ``rint(centers)`` and the inertia is the squared error of that
   final assignment.

Inertia is computed from exact integer statistics:
``sum_x |x|^2 + sum_j sum_c (n_j * mu_jc - 2 * S_jc) * mu_jc``, so it does not
depend on the path, the backend or the summation order of the points.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["kmeans"]

# Cap on the number of float64 values in one chunk's distance matrix (32 MiB).
_CHUNK_ELEMENTS = 1 << 22

# method="auto" runs Lloyd on the histogram while distinct colours are at most
# this fraction of the pixels.
AUTO_MAX_DISTINCT_FRACTION = 0.5


def _pack(pixels):
    """Pack an (n, C) uint8 array into (n,) uint64 keys, channel 0 most significant."""
    keys = np.zeros(pixels.shape[0], dtype=np.uint64)
    for c in range(pixels.shape[1]):
        keys = (keys << np.uint64(8)) | pixels[:, c].astype(np.uint64)
    return keys


def _unpack(keys, n_channels):
    out = np.empty((keys.shape[0], n_channels), dtype=np.uint8)
    for c in range(n_channels):
        shift = np.uint64(8 * (n_channels - 1 - c))
        out[:, c] = ((keys >> shift) & np.uint64(255)).astype(np.uint8)
    return out


def _chunks(n_items, per_item):
    size = max(1, _CHUNK_ELEMENTS // max(1, per_item))
    for start in range(0, n_items, size):
        yield start, min(n_items, start + size)


def distinct_colours(pixels):
    """Sorted distinct colours of ``pixels`` (n, C) and their counts, chunk by chunk."""
    keys_acc = np.empty(0, dtype=np.uint64)
    counts_acc = np.empty(0, dtype=np.int64)
    for a, b in _chunks(pixels.shape[0], 1):
        k, cnt = np.unique(_pack(pixels[a:b]), return_counts=True)
        keys_acc = np.concatenate([keys_acc, k])
        counts_acc = np.concatenate([counts_acc, cnt.astype(np.int64)])
        keys_acc, inverse = np.unique(keys_acc, return_inverse=True)
        counts_acc = np.bincount(inverse.ravel(), weights=counts_acc).astype(np.int64)
    return keys_acc, _unpack(keys_acc, pixels.shape[1]), counts_acc


def _int_sq_dist(colours, colour):
    diff = colours.astype(np.int64) - colour.astype(np.int64)
    return (diff * diff).sum(axis=1)


def init_random(counts, k, rng):
    """Indices of k distinct colours drawn with probability proportional to count."""
    p = counts / counts.sum()
    return rng.choice(counts.shape[0], size=k, replace=False, p=p)


def init_kmeanspp(colours, counts, k, rng):
    """Indices of k colours chosen by greedy, count-weighted k-means++ (exact integers)."""
    n_local = 2 + int(math.log(k))
    cum = np.cumsum(counts)
    first = int(np.searchsorted(cum, rng.integers(0, int(cum[-1])), side="right"))
    chosen = [first]
    closest = _int_sq_dist(colours, colours[first])
    for _ in range(1, k):
        cum = np.cumsum(counts * closest)
        draws = rng.integers(0, int(cum[-1]), size=n_local)
        candidates = np.searchsorted(cum, draws, side="right")
        best_pot, best_idx, best_dist = None, -1, None
        for cand in candidates:
            dist = np.minimum(closest, _int_sq_dist(colours, colours[cand]))
            pot = int((counts * dist).sum())
            if best_pot is None or pot < best_pot:
                best_pot, best_idx, best_dist = pot, int(cand), dist
        chosen.append(best_idx)
        closest = best_dist
    return np.asarray(chosen, dtype=np.int64)


def _sq_dist_to_centres(x, centres):
    """(m, k) float64 squared distances, channels added in order."""
    d = x[:, None, 0] - centres[None, :, 0]
    d = d * d
    for c in range(1, x.shape[1]):
        t = x[:, None, c] - centres[None, :, c]
        d += t * t
    return d


def label_dtype(k):
    """Label dtype for k colours: uint8 up to 256, else uint16."""
    return np.uint8 if k <= 256 else np.uint16


def assign(points, weights, centres):
    """Nearest centre of every point, and exact per-cluster channel sums and weights.

    Returns ``labels`` (m,) uint8 or uint16, ``sums`` (k, C) int64, ``counts`` (k,) int64.
    """
    k, n_ch = centres.shape
    n = points.shape[0]
    labels = np.empty(n, dtype=label_dtype(k))
    sums = np.zeros((k, n_ch), dtype=np.int64)
    counts = np.zeros(k, dtype=np.int64)
    for a, b in _chunks(n, k):
        x = points[a:b].astype(np.float64)
        lab = _sq_dist_to_centres(x, centres).argmin(axis=1)
        labels[a:b] = lab
        w = None if weights is None else weights[a:b].astype(np.float64)
        # bincount adds float64 values that are integers below 2**53: exact.
        counts += np.bincount(lab, weights=w, minlength=k).astype(np.int64)
        for c in range(n_ch):
            wx = x[:, c] if w is None else x[:, c] * w
            sums[:, c] += np.bincount(lab, weights=wx, minlength=k).astype(np.int64)
    return labels, sums, counts


def palette_of(centres):
    """The palette of float centres: rounded to the nearest integer, clipped to
    0..255 (explicit initial centres may lie outside it when no step runs)."""
    return np.clip(np.rint(centres), 0, 255).astype(np.uint8)


def inertia_from_stats(sq_norm_total, centres, sums, counts):
    """Squared error of an assignment, from its exact statistics."""
    t = (counts[:, None] * centres - 2.0 * sums) * centres
    return max(0.0, float(sq_norm_total) + float(t.sum()))


def farthest_colours(points, labels, centres, m):
    """Keys of the m distinct colours farthest from their centre (ties: smaller key)."""
    best_d = np.empty(0, dtype=np.float64)
    best_k = np.empty(0, dtype=np.uint64)
    for a, b in _chunks(points.shape[0], 1):
        x = points[a:b].astype(np.float64)
        own = centres[labels[a:b]]
        d = (x[:, 0] - own[:, 0]) ** 2
        for c in range(1, x.shape[1]):
            d += (x[:, c] - own[:, c]) ** 2
        d = np.concatenate([best_d, d])
        kk = np.concatenate([best_k, _pack(points[a:b])])
        kk, first = np.unique(kk, return_index=True)
        d = d[first]
        order = np.lexsort((kk, -d))[:m]
        best_d, best_k = d[order], kk[order]
    return best_k


def resolve_method(method, n_distinct, n_pixels):
    """The path that "auto" takes: the histogram unless most pixels have a colour
    of their own (then Lloyd over the pixels skips the remap pass)."""
    if method != "auto":
        return method
    return "histogram" if n_distinct <= AUTO_MAX_DISTINCT_FRACTION * n_pixels else "pixels"


def kmeans(pixels, n_colors, *, steps, init, seed, method, tol, progress=None):
    """Run the reference k-means on ``pixels`` (N, C) uint8 with a concrete method.

    Arguments are assumed valid (``kmeans_fast.quantize`` checks them).  Returns a
    dict with ``palette``, ``labels`` (N,) uint8 or uint16, ``centers``, ``inertia``,
    ``steps_run``, ``converged``, ``history``, ``method`` (the path taken) and
    ``n_distinct``.
    """
    n_ch = pixels.shape[1]
    keys, colours, counts = distinct_colours(pixels)
    n_distinct = colours.shape[0]
    sq_norm_total = int((counts * (colours.astype(np.int64) ** 2).sum(axis=1)).sum())
    method = resolve_method(method, n_distinct, pixels.shape[0])
    done = dict(method=method, n_distinct=n_distinct)

    def pixel_colour_index(a, b):
        return np.searchsorted(keys, _pack(pixels[a:b]))

    if n_colors >= n_distinct:
        labels = np.empty(pixels.shape[0], dtype=label_dtype(n_distinct))
        for a, b in _chunks(pixels.shape[0], 1):
            labels[a:b] = pixel_colour_index(a, b)
        return dict(palette=colours.copy(), labels=labels,
                    centers=colours.astype(np.float64), inertia=0.0,
                    steps_run=0, converged=True, history=[], **done)

    rng = np.random.default_rng(seed)
    if isinstance(init, np.ndarray):
        centres = init.astype(np.float64)
    elif init == "random":
        centres = colours[init_random(counts, n_colors, rng)].astype(np.float64)
    else:
        centres = colours[init_kmeanspp(colours, counts, n_colors, rng)].astype(np.float64)

    points, weights = (pixels, None) if method == "pixels" else (colours, counts)

    history = []
    converged = False
    labels = stats = None
    steps_run = 0
    if progress is not None:
        progress(0, steps)
    for _ in range(steps):
        labels, sums, cnt = assign(points, weights, centres)
        history.append(inertia_from_stats(sq_norm_total, centres, sums, cnt))
        steps_run += 1
        if progress is not None:
            progress(steps_run, steps)
        new = centres.copy()
        filled = cnt > 0
        new[filled] = sums[filled] / cnt[filled, None]
        empty = np.flatnonzero(~filled)
        if empty.size:
            far = farthest_colours(points, labels, new, empty.size)
            new[empty] = _unpack(far, n_ch).astype(np.float64)
        shift = float(((new - centres) ** 2).sum())
        stats = (labels, sums, cnt) if shift == 0.0 else None
        centres = new
        if shift <= tol:
            converged = True
            break

    if stats is None:  # final assignment to the final centres
        labels, sums, cnt = assign(points, weights, centres)
    else:
        labels, sums, cnt = stats
    inertia = inertia_from_stats(sq_norm_total, centres, sums, cnt)

    if method != "pixels":
        colour_labels = labels
        labels = np.empty(pixels.shape[0], dtype=colour_labels.dtype)
        for a, b in _chunks(pixels.shape[0], 1):
            labels[a:b] = colour_labels[pixel_colour_index(a, b)]

    return dict(palette=palette_of(centres), labels=labels, centers=centres, inertia=inertia,
                steps_run=steps_run, converged=converged, history=history, **done)
