"""Benchmark suite of kmeans_fast: numba vs the NumPy reference vs the tools people use.

    python -m benchmarks --quick        # a few minutes on 2 cores: 1, 4, 24 MP
    python -m benchmarks                # full: 1, 4, 24, 96 MP, k = 16, 64, 256
    python -m benchmarks --images DIR   # your own photos

It generates its own deterministic photo-like images (no downloads), times every
method in a fresh worker process (median wall time after a warm-up, peak memory,
PSNR, threads), the defaults with one core busy, the pipeline stage by stage, the
whole command against its floor and pngquant, and a batch of photos; a whole full
run writes ``results/RESULTS.md`` (opening with the targets table),
``results/results.json`` and ``results/time_vs_megapixels.png`` (other runs write
under ``_work/``).  Peers (scikit-learn, OpenCV, libimagequant, Pillow) come with
the ``[bench]`` extra; a missing one is marked "not installed".

Modules: ``images`` (test images, shared initial centres), ``methods`` (what is
timed), ``worker`` (one measurement per process), ``e2e`` (the pipeline stage
by stage, the PNG encoder), ``commands`` (whole commands, floor, pngquant, peak
memory), ``throughput`` (batch photos and throughput), ``measure`` (timed calls
and processes, the busy loop), ``runner`` (plan, skip rules, sections, command
line), ``report`` (targets, markdown, JSON, chart), ``system`` (machine, threads,
memory).
"""
