"""Plain NumPy reference implementation of kmeans_fast's k-means.

This module is the ``backend="numpy"`` of :func:`kmeans_fast.quantize` and the
yardstick the tests hold the Numba backend against.  It imports nothing from
the rest of the package (not even the colour spaces) so that a bug cannot hide
in both; its docstring is the contract both implement.

The algorithm, step by step
---------------------------
1. **Histogram.**  Every pixel's channels are packed into one integer key
   (channel 0 most significant).  The sorted distinct keys (colours) and their
   pixel counts form the colour histogram.
2. **Features.**  Distances are measured on integer features of each colour
   (``space="rgb"``: the channel values, RGBA premultiplied as
   ``(r*a, g*a, b*a, 255*a)``; ``space="oklab"``: Oklab times 2**16, rounded,
   gray as ``L = cbrt(linear)``, RGBA premultiplied; see ``features``).
3. **Transparency.**  For RGBA, every colour with alpha 0 is the one colour
   (0, 0, 0, 0) (key 0, counts added).  When that colour exists and
   ``2 <= k < distinct colours``, palette entry 0 is reserved for it and
   k-means places ``k - 1`` centers on the other colours ("free" colours).
4. **Few colours.**  When k is at least the number of distinct colours (after
   step 3), the palette is exactly those colours, in key order.
5. **Initial centers** (``rng = numpy.random.default_rng(seed)``), on the free
   colours' features, unless given explicitly (in channel values; for any
   space other than plain rgb/gray they are rounded to 8-bit colours and
   turned into features):

   * ``"random"``: ``rng.choice(D, size=k, replace=False, p=counts / N)``.
   * ``"kmeans++"``: the best (lowest objective, first on ties) of 3 greedy
     k-means++ seedings, drawn one after the other from ``rng``.  When the
     free colours fill at least ``8 k`` groups of 32 consecutive colours in
     tree order (below), the seedings run on those groups instead: each group
     one point at its weighted mean, ``rint(sum(count * x) / sum(count))``,
     weighted by its pixels, in group order (a coreset; the Lloyd steps then
     run on every colour).  A seeding is greedy k-means++ weighted by pixel
     counts, in exact integer arithmetic, on the features shifted right by
     ``s`` bits (``s`` the
     smallest such that no feature needs more than 12 bits: keeps count x
     distance^2 below 2**63).  The points are put in **tree order**
     (``tree_order``: by grid cell, the cells in Morton order, stably, so by
     key within a cell).  Draws:
     ``u0 = rng.random()``, then ``U = rng.random((k - 1, 2 + int(log(k))))``;
     a uniform u picks the integer ``min(int(u * float(T)), T - 1)`` of
     ``[0, T)``.  The first center holds pixel ``u0 -> [0, N)`` (points in grid
     order, each holding its count of pixels).  Round r maps each draw of
     ``U[r-1]`` through the cumulative sum of ``count * closest`` (the first
     point in tree order whose running sum exceeds it; point 0 if the sum is
     0) and keeps the
     candidate with the lowest potential ``sum(count * min(closest,
     |x - candidate|^2))``, ties to the first drawn.
6. **Lloyd steps.**  Each step assigns every point to its nearest center by the
   squared Euclidean distance in float64, ``((d0*d0 + d1*d1) + d2*d2) + d3*d3``
   (as many terms as features; ties to the lowest index), sums each cluster's
   features and weights exactly, and moves each center to ``sum / count``.  The
   points are the free colours weighted by their counts, or (``method="pixels"``,
   rgb/gray only) every pixel with weight 1: the same k-means.  The step's
   objective is ``sum |x|^2 + sum_j sum_f (n_j * mu_jf - 2 * S_jf) * mu_jf``
   from those exact statistics (``sum |x|^2`` exact, as a Python int).
7. **Empty clusters.**  Centers of empty clusters move, lowest index first, to
   the free colours farthest (float64, features added in order) from the new
   center of the cluster the step assigned them to; ties to the smaller key.
8. **Stopping.**  After each update the total squared center shift is compared
   with ``tol``; ``shift <= tol`` stops the loop as converged.
9. **Palette.**  Centers go back to 8-bit colours (``palette_from_centers``).
   When the Lloyd steps reached a fixed point (their last step left the
   centers where they were: converged with a shift of 0, whatever ``tol``),
   up to ``PALETTE_STEPS`` **palette steps** follow: Lloyd steps whose
   centers stay 8-bit colours (rounding converged centers can leave colours
   nearer another entry, and in RGB a cluster's best 8-bit colour is its
   rounded mean).  A palette step assigns every free
   colour to its nearest palette entry (step 6's distance on the palette
   colours' features) and moves each entry that has colours to the mean of
   their features, turned into an 8-bit colour (``palette_from_centers``;
   entries without colours keep theirs).  The new palette is kept only when
   it differs and its objective ``sum count * |x - p|^2`` over the free
   colours (exact integers) is strictly lower; the first step that keeps
   nothing ends them.  The centers stay those of the Lloyd steps.  The
   reserved (0, 0, 0, 0) goes first.
10. **Labels.**  Every distinct colour (and so every pixel) takes its nearest
    palette entry, by the same distance on the palette colours' features.
    ``inertia`` is the squared error of that assignment in features, ``sse``
    in channel values: both exact integers.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["histogram", "features", "palette_from_centers", "fit", "nearest", "remap",
           "remap_with"]

# Cap on the number of float64 values in one chunk's distance matrix (32 MiB).
_CHUNK_ELEMENTS = 1 << 22
OKLAB_SCALE = 65536
LEAF = 32                   # points per coreset group (step 5)
CORESET_MIN_LEAVES = 8      # groups per center needed to seed on the coreset
N_INIT = 3                  # k-means++ seedings, the best kept
PALETTE_STEPS = 8           # most palette steps after the Lloyd steps' fixed point (step 9)


def _chunks(n_items, per_item):
    size = max(1, _CHUNK_ELEMENTS // max(1, per_item))
    for start in range(0, n_items, size):
        yield start, min(n_items, start + size)


# --------------------------------------------------------------------------
# 1. histogram
# --------------------------------------------------------------------------
def _pack(pixels):
    """Pack an (n, C) uint8 array into (n,) uint64 keys, channel 0 most significant."""
    keys = np.zeros(pixels.shape[0], dtype=np.uint64)
    for c in range(pixels.shape[1]):
        keys = (keys << np.uint64(8)) | pixels[:, c].astype(np.uint64)
    return keys


def _unpack(keys, n_channels):
    out = np.empty((keys.shape[0], n_channels), dtype=np.uint8)
    for c in range(n_channels):
        out[:, c] = (keys >> np.uint64(8 * (n_channels - 1 - c))) & np.uint64(255)
    return out


def _distinct_keys(pixels):
    keys_acc = np.empty(0, dtype=np.uint64)
    counts_acc = np.empty(0, dtype=np.int64)
    for a, b in _chunks(pixels.shape[0], 1):
        k, cnt = np.unique(_pack(pixels[a:b]), return_counts=True)
        keys_acc = np.concatenate([keys_acc, k])
        counts_acc = np.concatenate([counts_acc, cnt.astype(np.int64)])
        keys_acc, inverse = np.unique(keys_acc, return_inverse=True)
        counts_acc = np.bincount(inverse.ravel(), weights=counts_acc).astype(np.int64)
    return keys_acc, counts_acc


def histogram(pixels):
    """Sorted distinct colours of ``pixels`` (n, C) uint8 and their counts."""
    keys, counts = _distinct_keys(pixels)
    return _unpack(keys, pixels.shape[1]), counts


# --------------------------------------------------------------------------
# 2. features, 9. palette
# --------------------------------------------------------------------------
_LMS = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                 [0.2119034982, 0.6806995451, 0.1073969566],
                 [0.0883024619, 0.2817188376, 0.6299787005]])
_LAB = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                 [1.9779984951, -2.4285922050, 0.4505937099],
                 [0.0259040371, 0.7827717662, -0.8086757660]])
_LAB_TO_LMS = np.array([[1.0, 0.3963377774, 0.2158037573],
                        [1.0, -0.1055613458, -0.0638541728],
                        [1.0, -0.0894841775, -1.2914855480]])
_LMS_TO_RGB = np.array([[4.0767416621, -3.3077115913, 0.2309699292],
                        [-1.2684380046, 2.6097574011, -0.3413193965],
                        [-0.0041960863, -0.7034186147, 1.7076147010]])


def _linear(values):
    x = np.asarray(values, dtype=np.float64) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _srgb(linear):
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return 255.0 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def features(colours, space):
    """(D, C) int32 features of (D, C) uint8 colours in ``space``."""
    n_ch = colours.shape[1]
    if space == "rgb":
        f = colours.astype(np.int32)
        if n_ch == 4:
            f[:, :3] *= f[:, 3:]
            f[:, 3:] *= 255
        return f
    if n_ch == 1:
        lab = np.cbrt(_linear(colours))
    else:
        lab = np.cbrt(_linear(colours[:, :3]) @ _LMS.T) @ _LAB.T
    if n_ch == 4:
        alpha = colours[:, 3:].astype(np.float64) / 255.0
        lab = np.concatenate([lab * alpha, alpha], axis=1)
    return np.rint(lab * OKLAB_SCALE).astype(np.int32)


def palette_from_centers(centers, space, n_ch):
    """8-bit colours of centers given in features: rounded, clipped,
    premultiplied ones divided by their alpha (alpha 0 -> (0, 0, 0, 0))."""
    c = np.asarray(centers, dtype=np.float64)
    if space == "rgb":
        if n_ch == 4:
            weight = c[:, 3:] / 255
            alpha = np.rint(np.clip(weight, 0.0, 255.0))
            with np.errstate(divide="ignore", invalid="ignore"):
                colour = np.where(alpha >= 1.0, c[:, :3] / np.maximum(weight, 1e-300), 0.0)
            c = np.concatenate([colour, np.where(alpha >= 1.0, alpha, 0.0)], axis=1)
        return np.clip(np.rint(c), 0, 255).astype(np.uint8)
    lab = c / OKLAB_SCALE
    if n_ch == 4:
        alpha8 = np.rint(np.clip(lab[:, 3:], 0.0, 1.0) * 255.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lab = np.where(alpha8 >= 1.0, lab[:, :3] / np.maximum(lab[:, 3:], 1e-300), 0.0)
    if n_ch == 1:
        out = _srgb(np.clip(lab, 0.0, None) ** 3)
    else:
        lms = lab @ _LAB_TO_LMS.T
        out = _srgb((lms * lms * lms) @ _LMS_TO_RGB.T)
    if n_ch == 4:
        out = np.concatenate([np.where(alpha8 >= 1.0, out, 0.0), alpha8], axis=1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# 5. initial centers
# --------------------------------------------------------------------------
def _pick(u, total):
    return min(int(u * float(total)), total - 1)


def tree_order(points):
    """Order of the points: by grid cell, cells in Morton order, then by index.

    With ``bits = max(1, min(8, 15 // F))``, feature f of a point lies in cell
    ``(x_f - min_f) * 2**bits // (max_f - min_f + 1)``; a cell's code puts bit b
    of feature f's cell number at position ``b * F + F - 1 - f``.
    """
    n, n_feat = points.shape
    bits = max(1, min(8, 15 // n_feat))
    x = points.astype(np.int64)
    low, high = x.min(axis=0), x.max(axis=0)
    code = np.zeros(n, dtype=np.int64)
    for f in range(n_feat):
        cell = (x[:, f] - low[f]) * (1 << bits) // (high[f] - low[f] + 1)
        for b in range(bits):
            code |= ((cell >> b) & 1) << (b * n_feat + n_feat - 1 - f)
    return np.argsort(code, kind="stable")


def greedy_kmeanspp(points, counts, k, rng, *, arrange=True):
    """Indices of k points chosen by greedy, count-weighted k-means++ (step 5),
    visiting the points in tree order (``arrange``) or in the order given."""
    order = tree_order(points) if arrange else np.arange(points.shape[0])
    x = points.astype(np.int64)
    bits = int(np.abs(x).max()).bit_length()
    x = (x >> max(0, bits - 12))[order]
    w = counts[order].astype(np.int64)
    u0 = rng.random()
    draws = rng.random((k - 1, 2 + int(math.log(k))))
    columns = [np.ascontiguousarray(x[:, f]) for f in range(x.shape[1])]

    def sq(index):   # (len(index), D): integers, exact in any order; a column at a time
        total = np.zeros((len(index), x.shape[0]), dtype=np.int64)
        for col in columns:
            d = col[None, :] - col[index][:, None]
            total += d * d
        return total

    first = int(np.searchsorted(np.cumsum(w), _pick(u0, int(w.sum())), side="right"))
    chosen = [first]
    closest = sq([first])[0]
    for r in range(1, k):
        cum = np.cumsum(w * closest)
        total = int(cum[-1])
        cands = [int(np.searchsorted(cum, _pick(u, total), side="right")) if total > 0 else 0
                 for u in draws[r - 1]]
        new_closest = np.minimum(closest[None, :], sq(cands))
        best = int(np.argmin((w[None, :] * new_closest).sum(axis=1)))   # ties: first drawn
        chosen.append(cands[best])
        closest = new_closest[best]
    return order[np.asarray(chosen, dtype=np.int64)]


def init_kmeanspp(points, counts, k, rng):
    """Initial centers of step 5's "kmeans++": best of 3 greedy seedings."""
    arrange = True
    n_leaves = -(-points.shape[0] // LEAF)
    if n_leaves >= CORESET_MIN_LEAVES * k:
        # the coreset: groups of LEAF points in tree order, at their rounded mean
        order = tree_order(points)
        group = np.arange(points.shape[0]) // LEAF
        w = np.bincount(group, weights=counts[order].astype(np.float64)).astype(np.int64)
        sums = np.stack([np.bincount(group, weights=(counts[order] * points[order, f]
                                                      ).astype(np.float64))
                         for f in range(points.shape[1])], axis=1).astype(np.int64)
        points, counts, arrange = np.rint(sums / w[:, None]).astype(np.int32), w, False
    sq_norm_total = _exact_sum(counts, (points.astype(np.int64) ** 2).sum(axis=1))
    best, best_cost = None, None
    for _ in range(N_INIT):
        centers = points[greedy_kmeanspp(points, counts, k, rng, arrange=arrange)]
        centers = centers.astype(np.float64)
        _, sums, cnt = assign(points, counts, centers)
        cost = _objective(sq_norm_total, centers, sums, cnt)
        if best is None or cost < best_cost:
            best, best_cost = centers, cost
    return best


# --------------------------------------------------------------------------
# 6. Lloyd steps
# --------------------------------------------------------------------------
def _sq_dist_to(x, centers):
    """(m, k) float64 squared distances, features added in order."""
    d = x[:, None, 0] - centers[None, :, 0]
    d = d * d
    for c in range(1, x.shape[1]):
        t = x[:, None, c] - centers[None, :, c]
        d = d + t * t
    return d


def assign(points, weights, centers):
    """Nearest center of every point, and exact per-cluster feature sums and weights.

    Returns ``labels`` (m,) int64, ``sums`` (k, C) int64, ``counts`` (k,) int64.
    """
    k, n_ch = centers.shape
    n = points.shape[0]
    labels = np.empty(n, dtype=np.int64)
    sums = np.zeros((k, n_ch), dtype=np.int64)
    counts = np.zeros(k, dtype=np.int64)
    for a, b in _chunks(n, k):
        x = points[a:b].astype(np.float64)
        lab = _sq_dist_to(x, centers).argmin(axis=1)
        labels[a:b] = lab
        w = np.ones(b - a) if weights is None else weights[a:b].astype(np.float64)
        # bincount adds float64 values that are integers below 2**53: exact.
        counts += np.bincount(lab, weights=w, minlength=k).astype(np.int64)
        for c in range(n_ch):
            sums[:, c] += np.bincount(lab, weights=x[:, c] * w, minlength=k).astype(np.int64)
    return labels, sums, counts


def _exact_sum(weights, values):
    """sum(weights * values) as a Python int (no int64 overflow)."""
    return int(np.sum(weights.astype(object) * values.astype(object)))


def _objective(sq_norm_total, centers, sums, counts):
    t = (counts[:, None] * centers - 2.0 * sums) * centers
    return max(0.0, float(sq_norm_total) + float(t.sum()))


def _farthest(points, labels, centers, m):
    """Indices of the m points farthest from their cluster's center (ties: smaller index)."""
    x = points.astype(np.float64)
    own = centers[labels]
    d = (x[:, 0] - own[:, 0]) ** 2
    for c in range(1, x.shape[1]):
        d = d + (x[:, c] - own[:, c]) ** 2
    return np.lexsort((np.arange(len(d)), -d))[:m]


def _lloyd(points, weights, centers, *, steps, tol, progress, pixel_points):
    sq_norm_total = _exact_sum(weights, (points.astype(np.int64) ** 2).sum(axis=1))
    history, converged, steps_run = [], False, 0
    if progress is not None:
        progress(0, steps)
    for _ in range(steps):
        if pixel_points is None:
            labels, sums, cnt = assign(points, weights, centers)
        else:
            _, sums, cnt = assign(pixel_points, None, centers)
            labels = None
        history.append(_objective(sq_norm_total, centers, sums, cnt))
        steps_run += 1
        if progress is not None:
            progress(steps_run, steps)
        new = centers.copy()
        filled = cnt > 0
        new[filled] = sums[filled] / cnt[filled, None]
        empty = np.flatnonzero(~filled)
        if empty.size:
            if labels is None:
                labels = assign(points, weights, centers)[0]
            far = _farthest(points, labels, new, empty.size)
            new[empty[:far.size]] = points[far]
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if shift <= tol:
            converged = True
            break
    return centers, steps_run, converged, history, converged and shift == 0.0


def _palette_steps(points, weights, centers, space, n_ch):
    """Step 9's palette steps from the Lloyd steps' fixed point: returns the palette."""

    def statistics(pal):
        feats = features(pal, space).astype(np.int64)
        labels, sums, cnt = assign(points, weights, feats.astype(np.float64))
        err = ((points.astype(np.int64) - feats[labels]) ** 2).sum(axis=1)
        return sums, cnt, _exact_sum(weights, err)

    palette = palette_from_centers(centers, space, n_ch)
    sums, cnt, error = statistics(palette)
    means = centers.copy()
    for _ in range(PALETTE_STEPS):
        has = cnt > 0
        means[has] = sums[has] / cnt[has, None]
        new_palette = palette_from_centers(means, space, n_ch)
        if (new_palette == palette).all():
            break
        new_sums, new_cnt, new_error = statistics(new_palette)
        if new_error >= error:
            break
        palette, sums, cnt, error = new_palette, new_sums, new_cnt, new_error
    return palette


# --------------------------------------------------------------------------
# the whole fit
# --------------------------------------------------------------------------
def fit(colours, counts, n_colors, *, steps, init, seed, space, tol, progress=None,
        pixels=None):
    """k-means palette of the histogram (colours, counts): steps 2-10.

    Arguments are assumed valid (``kmeans_fast`` checks them).  ``pixels``
    (N, C) uint8 runs the Lloyd steps over the pixels.  Returns a dict with
    ``palette``, ``centers``, ``colour_labels``, ``inertia``, ``sse``,
    ``steps_run``, ``converged``, ``history``, ``reserved``.
    """
    n_ch = colours.shape[1]
    if n_ch == 4 and (colours[:, 3] == 0).any():
        clear = colours[:, 3] == 0
        pts = np.concatenate([np.zeros((1, 4), np.uint8), colours[~clear]])
        pts_counts = np.concatenate([[counts[clear].sum()], counts[~clear]]).astype(np.int64)
        transparent = True
    else:
        pts, pts_counts, transparent = colours, counts, False

    reserved, history, steps_run, converged = False, [], 0, True
    if n_colors >= pts.shape[0]:
        palette = pts.copy()
        centers = features(palette, space).astype(np.float64)
    else:
        reserved = transparent and n_colors >= 2
        free, free_counts = (pts[1:], pts_counts[1:]) if reserved else (pts, pts_counts)
        k = n_colors - 1 if reserved else n_colors
        x = features(free, space)
        rng = np.random.default_rng(seed)
        if isinstance(init, np.ndarray):
            if space == "rgb" and n_ch in (1, 3):
                centers = init.astype(np.float64)
            else:
                centers = features(np.clip(np.rint(init), 0, 255).astype(np.uint8),
                                   space).astype(np.float64)
        elif init == "random":
            idx = rng.choice(free.shape[0], size=k, replace=False,
                             p=free_counts / free_counts.sum())
            centers = x[idx].astype(np.float64)
        else:
            centers = init_kmeanspp(x, free_counts, k, rng)
        centers, steps_run, converged, history, fixed = _lloyd(
            x, free_counts, centers, steps=steps, tol=tol, progress=progress,
            pixel_points=pixels)
        if fixed:
            palette = _palette_steps(x, free_counts, centers, space, n_ch)
        else:
            palette = palette_from_centers(centers, space, n_ch)
        if reserved:
            palette = np.concatenate([np.zeros((1, 4), np.uint8), palette])
            centers = np.concatenate([np.zeros((1, 4)), centers])

    colour_labels = nearest(colours, palette, space)
    feat_err = ((features(colours, space).astype(np.int64)
                 - features(palette, space)[colour_labels].astype(np.int64)) ** 2).sum(axis=1)
    raw_err = ((colours.astype(np.int64) - palette[colour_labels].astype(np.int64)) ** 2).sum(1)
    return dict(palette=palette, centers=centers, colour_labels=colour_labels,
                inertia=_exact_sum(counts, feat_err), sse=_exact_sum(counts, raw_err),
                steps_run=steps_run, converged=converged, history=history, reserved=reserved)


def nearest(colours, palette, space):
    """Nearest palette entry (ties: lowest index) of each colour, by feature distance."""
    return assign(features(colours, space), None,
                  features(palette, space).astype(np.float64))[0]


def remap_with(pixels, colours, colour_labels):
    """labels[p] = colour_labels[index of pixel p's colour among ``colours``]."""
    keys = _pack(colours)
    labels = np.empty(pixels.shape[0], dtype=np.int64)
    for a, b in _chunks(pixels.shape[0], 1):
        labels[a:b] = colour_labels[np.searchsorted(keys, _pack(pixels[a:b]))]
    return labels


def remap(pixels, palette, space):
    """Nearest palette entry of every pixel."""
    colours, _ = histogram(pixels)
    return remap_with(pixels, colours, nearest(colours, palette, space))
