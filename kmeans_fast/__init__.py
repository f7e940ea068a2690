"""kmeans_fast: exact, deterministic, fast k-means colour quantization."""

__version__ = "0.1.0"

__all__ = ["quantize", "Quantization", "__version__"]


def __getattr__(name):
    # Imported on first use: the command starts (and answers Ctrl-C) before
    # NumPy and Numba load.
    if name in ("quantize", "Quantization"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"quantize", "Quantization"})
