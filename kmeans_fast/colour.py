"""Colour spaces of kmeans_fast: where k-means measures distances.

k-means, its initialisation, the final remap and dithering all work on
*features*: small integer vectors computed once per distinct colour of the
image.  Integer features keep the engine's exact integer accumulators (sums of
``count * feature`` are exact, so results do not depend on the thread count or
the summation order).  Two spaces exist:

``"rgb"``
    The channel values themselves (gray: 1 feature, RGB: 3).  RGBA colours are
    **premultiplied** by their alpha, so that colours nobody can see do not
    spend palette entries: ``(r*a, g*a, b*a, 255*a)`` (integers up to 65025;
    the alpha feature is scaled by 255 like the others, so one step of alpha
    weighs as much as one step of a colour channel on an opaque pixel).
``"oklab"``
    Björn Ottosson's perceptual Oklab (2020), in fixed point: ``L``, ``a`` and
    ``b`` times :data:`OKLAB_SCALE`, rounded to integers.  Gray images use
    ``L`` alone (``L = cbrt(linear)`` for a neutral colour).  RGBA colours are
    premultiplied as above: ``(L*a/255, a_*a/255, b_*a/255, a/255)`` times the
    scale, each rounded.

The palette goes back to 8-bit colours with :func:`palette_from_centres`
(inverse transform, rounded, clipped), and a palette's own features, used to
find a colour's nearest palette entry, are :func:`features` of the palette's
colours.

Everything here is plain NumPy, computed per distinct colour (not per pixel),
so it costs little next to a pass over the image.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPACES", "OKLAB_SCALE", "n_features", "features", "palette_from_centres",
           "widen", "srgb_to_linear", "linear_to_srgb", "linear_to_oklab", "oklab_to_linear"]

SPACES = ("rgb", "oklab")

# Oklab L runs 0..1 and a, b about -0.4..0.4: times 2**16 they keep adjacent
# 8-bit colours apart almost everywhere, and sums of count * feature stay far
# below 2**63 for any image that fits in memory.
OKLAB_SCALE = 1 << 16
_ALPHA_SCALE = 255          # rgb space: the alpha feature is 255 * a

_M1 = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                [0.2119034982, 0.6806995451, 0.1073969566],
                [0.0883024619, 0.2817188376, 0.6299787005]])
_M2 = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                [1.9779984951, -2.4285922050, 0.4505937099],
                [0.0259040371, 0.7827717662, -0.8086757660]])
_M2_INV = np.array([[1.0, 0.3963377774, 0.2158037573],
                    [1.0, -0.1055613458, -0.0638541728],
                    [1.0, -0.0894841775, -1.2914855480]])
_M1_INV = np.array([[4.0767416621, -3.3077115913, 0.2309699292],
                    [-1.2684380046, 2.6097574011, -0.3413193965],
                    [-0.0041960863, -0.7034186147, 1.7076147010]])


def _check_space(space):
    if space not in SPACES:
        raise ValueError(f"space={space!r} is not one of " + ", ".join(map(repr, SPACES)))


def widen(values, n_channels):
    """8-bit colours (any shape ``(..., C)``) in a layout of more channels.

    Gray becomes RGB (``(v, v, v)``), and gray or RGB becomes RGBA with alpha
    255: the same colours, as an image of mixed kinds needs them (a shared
    palette for gray and colour images).  Returns ``values`` itself when C is
    already ``n_channels``.
    """
    values = np.asarray(values, dtype=np.uint8)
    n_ch = values.shape[-1]
    if n_ch == n_channels:
        return values
    if n_ch > n_channels or n_ch not in (1, 3) or n_channels not in (3, 4):
        raise ValueError(f"cannot widen {n_ch} channels to {n_channels}")
    rgb = np.repeat(values, 3, axis=-1) if n_ch == 1 else values
    if n_channels == 3:
        return rgb
    alpha = np.full(values.shape[:-1] + (1,), 255, dtype=np.uint8)
    return np.concatenate([rgb, alpha], axis=-1)


def n_features(n_channels):
    """Features per colour of an image with n_channels channels (the same in every space)."""
    return n_channels


def srgb_to_linear(v):
    """sRGB values 0..255 (any shape) to linear light 0..1, float64 (IEC 61966-2-1)."""
    x = np.asarray(v, dtype=np.float64) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x):
    """Linear light (any shape, float) to sRGB values 0..255 (float64, not rounded)."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return 255.0 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def linear_to_oklab(rgb):
    """(..., 3) linear sRGB to (..., 3) Oklab (L, a, b), float64."""
    lms = np.cbrt(np.asarray(rgb, dtype=np.float64) @ _M1.T)
    return lms @ _M2.T


def oklab_to_linear(lab):
    """(..., 3) Oklab to (..., 3) linear sRGB, float64 (not clipped)."""
    lms = np.asarray(lab, dtype=np.float64) @ _M2_INV.T
    return (lms * lms * lms) @ _M1_INV.T


def features(colours, space):
    """Integer features of 8-bit colours.

    Parameters
    ----------
    colours : ndarray of shape (D, C), dtype uint8
        C is 1 (gray), 3 (RGB, in that order for ``"oklab"``) or 4 (RGBA).
    space : {"rgb", "oklab"}

    Returns
    -------
    ndarray of shape (D, C), dtype int32
        See the module notes.
    """
    _check_space(space)
    colours = np.asarray(colours, dtype=np.uint8)
    if colours.ndim != 2 or colours.shape[1] not in (1, 3, 4):
        raise ValueError(f"colours have shape {colours.shape}: expected (D, C), C in 1, 3, 4")
    n_ch = colours.shape[1]
    if space == "rgb":
        out = colours.astype(np.int32)
        if n_ch == 4:
            alpha = out[:, 3:]
            out[:, :3] *= alpha
            out[:, 3:] = _ALPHA_SCALE * alpha
        return out
    if n_ch == 1:
        lab = np.cbrt(srgb_to_linear(colours))                 # neutral: L = cbrt(Y)
    else:
        lab = linear_to_oklab(srgb_to_linear(colours[:, :3]))
    if n_ch == 4:
        alpha = colours[:, 3:].astype(np.float64) / 255.0
        lab = np.concatenate([lab * alpha, alpha], axis=1)
    return np.rint(lab * OKLAB_SCALE).astype(np.int32)


def palette_from_centres(centres, space, n_channels):
    """8-bit colours of k-means centres given in feature space.

    Parameters
    ----------
    centres : ndarray of shape (k, C), float
        Centres in the features of :func:`features`.
    space : {"rgb", "oklab"}
    n_channels : int
        C, the channels of the image (1, 3 or 4).

    Returns
    -------
    ndarray of shape (k, C), dtype uint8
        Rounded to the nearest integer and clipped to 0..255.  Premultiplied
        centres are divided by their alpha; a centre with alpha 0 becomes
        ``(0, 0, 0, 0)``.
    """
    _check_space(space)
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != n_channels:
        raise ValueError(f"centres have shape {c.shape}: expected (k, {n_channels})")
    if space == "rgb":
        if n_channels == 4:
            weight = c[:, 3:] / _ALPHA_SCALE                        # alpha, 0..255
            alpha = np.rint(np.clip(weight, 0.0, 255.0))
            with np.errstate(divide="ignore", invalid="ignore"):
                colour = np.where(alpha >= 1.0, c[:, :3] / np.maximum(weight, 1e-300), 0.0)
            c = np.concatenate([colour, np.where(alpha >= 1.0, alpha, 0.0)], axis=1)
        return np.clip(np.rint(c), 0, 255).astype(np.uint8)
    lab = c / OKLAB_SCALE
    if n_channels == 4:
        alpha = np.clip(lab[:, 3:], 0.0, 1.0)
        alpha8 = np.rint(alpha * 255.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lab = np.where(alpha8 >= 1.0, lab[:, :3] / np.maximum(lab[:, 3:], 1e-300), 0.0)
    if n_channels == 1:
        out = linear_to_srgb(np.clip(lab, 0.0, None) ** 3)
    else:
        out = linear_to_srgb(oklab_to_linear(lab))
    if n_channels == 4:
        out = np.concatenate([np.where(alpha8 >= 1.0, out, 0.0), alpha8], axis=1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
