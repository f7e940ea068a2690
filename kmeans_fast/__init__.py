"""kmeans_fast: exact, deterministic, fast k-means colour quantization."""

__version__ = "0.1.0"

# Public names, imported on first use: the command starts (and answers Ctrl-C)
# before NumPy and Numba load.  Every kernel module imports ``._jit`` first,
# which sends the compiled kernels' cache to a per-user folder.
_LAZY = {
    "quantize": "api", "Quantization": "api", "Histogram": "api", "histogram": "api",
    "fit_palette": "api", "PaletteFit": "api", "remap": "api",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
