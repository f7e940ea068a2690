"""The machine, its thread settings and the process's memory, for every results file."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

# Distributions whose versions go into every results file.
VERSIONED = ("kmeans_fast", "numpy", "numba", "opencv-python-headless", "opencv-python",
             "pillow", "scikit-learn", "imagequant", "scikit-image", "matplotlib",
             "threadpoolctl")


def _proc_status(field):
    """A ``/proc/self/status`` field in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes():
    """Current resident set size of this process."""
    return _proc_status("VmRSS") or 0


def peak_rss_bytes():
    """Peak resident set size since the start, or since :func:`reset_peak_rss`."""
    peak = _proc_status("VmHWM")
    if peak is None:
        import resource
        scale = 1 if sys.platform == "darwin" else 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return peak


def reset_peak_rss():
    """Reset the peak RSS to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def total_memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def load_1min():
    """The 1-minute load average, rounded, or None where the system has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def versions(dists=VERSIONED):
    found = {"python": platform.python_version()}
    for dist in dists:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


def thread_settings():
    """Threads each library will use in a fresh process with this environment."""
    out = {}
    try:
        import numba
        out["numba"] = numba.get_num_threads()
    except ImportError:
        pass
    try:
        import cv2
        out["opencv"] = cv2.getNumThreads()
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info
        import sklearn.cluster  # noqa: F401  (loads its OpenMP runtime)
        for pool in threadpool_info():
            key = f"{pool['user_api']} ({pool['prefix']})"
            out[key] = pool["num_threads"]
    except ImportError:
        pass
    env = {k: os.environ[k] for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                       "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
           if k in os.environ}
    if env:
        out["environment"] = env
    return out


def machine():
    """Everything a reader needs to reproduce a result: CPU, cores, memory, versions."""
    mem = total_memory_bytes()
    return dict(cpu=cpu_model(), cores=usable_cores(), logical_cpus=os.cpu_count(),
                memory_gib=round(mem / 2**30, 1) if mem else None,
                os=f"{platform.system()} {platform.release()}",
                versions=versions(), threads=thread_settings())
