"""Benchmark suite of kmeans_fast: numba vs the NumPy reference vs the tools people use.

    python -m benchmarks --quick        # a few minutes on 2 cores: 1, 4, 24 MP
    python -m benchmarks                # full: 1, 4, 24, 96 MP, k = 16, 64, 256
    python -m benchmarks --images DIR   # your own photos

It generates its own deterministic photo-like images (no downloads), times every
method in a fresh worker process (median wall time after a warm-up, peak memory,
PSNR, threads), and writes ``results/RESULTS.md``, ``results/results.json`` and
``results/time_vs_megapixels.png``.  Peers (scikit-learn, OpenCV, libimagequant,
Pillow) come with the ``[bench]`` extra; a missing one is marked "not installed".

Modules: ``images`` (test images, shared initial centres), ``methods`` (what is
timed), ``worker`` (one measurement per process), ``e2e`` (the CLI pipeline
stage by stage), ``runner`` (plan, skip rules, command line), ``report``
(markdown, JSON, chart), ``system`` (machine, threads, memory).
"""
