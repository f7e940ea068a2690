"""kmeans_fast: exact, deterministic, fast k-means colour quantization."""

from . import _jit  # noqa: F401  (first: sets where every kernel caches)
from .api import Quantization, quantize

__version__ = "0.1.0"

__all__ = ["quantize", "Quantization", "__version__"]
