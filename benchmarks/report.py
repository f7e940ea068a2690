"""Turn a results dict into RESULTS.md, results.json and time_vs_megapixels.png.

Everything here is a pure function of the results dict, so
``python -m benchmarks --from-json results.json`` redraws a report without
measuring again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

MB = 1e6
TARGET_MP = 24
TARGET_CORES = 2
TARGET_STEPS = 10
REFERENCE = "numpy-reference"
HEADLINE = "numba-auto"
DEFAULTS = "numba-defaults"
BATCH_FILES = 200          # issue 9: 200 photos of 1 MP


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------
def seconds(x):
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 10:
        return f"{x:.1f} s"
    if x >= 0.01:
        return f"{x:.3f} s"
    return f"{x * 1e3:.2f} ms"


def times(x):
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"


def short(row):
    """One progress line for a measurement."""
    if row.get("status") != "ok":
        return row.get("reason", row.get("status", "?"))
    return (f"{seconds(row['median_s'])} (median of {len(row['times_s'])}), "
            f"+{row['added_bytes'] / MB:.0f} MB, {row['psnr_db']:.2f} dB, "
            f"{row['threads']} threads")


def short_compile(row):
    if row.get("status") != "ok":
        return row.get("reason", "?")
    return (f"first call {seconds(row['first_call_s'])}, "
            f"then {seconds(row['warm_call_s'])}")


def short_e2e(row):
    if row.get("status") != "ok":
        return row.get("reason", "?")
    return "; ".join(f"{b['input']} k={b['k']}: {seconds(b['total_s'])} ("
                     + ", ".join(f"{name} {seconds(v)}" for name, v in b["stages"].items()
                                 if v >= 0.005) + ")"
                     for b in row["breakdown"])


def short_busy(row):
    if row.get("status") != "ok":
        return row.get("reason", "?")
    return (f"quiet {seconds(row['quiet_median_s'])}, busy {seconds(row['busy_median_s'])} "
            f"({row['ratio']:.2f}x)")


def short_batch(row):
    if row.get("status") != "ok":
        return row.get("reason", "?")
    return (f"{row['files']} files: batch {seconds(row['median_s']['batch'])}, --jobs 1 "
            f"{seconds(row['median_s']['jobs1'])}, loop ~{seconds(row['loop_scaled_s'])} "
            f"(from {row['sample']}); {row['vs_jobs1']:.2f}x / {row['vs_loop']:.1f}x; "
            f"outputs {'identical' if row['identical'] else 'DIFFER'}")


def mb(n):
    return "-" if n is None else f"{n / MB:.0f} MB"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# derived numbers
# --------------------------------------------------------------------------
def _find(runs, method, k, megapixels=None, image=None):
    for r in runs:
        if r["method"] == method and r["k"] == k and (
                (image is not None and r["image"] == image)
                or (megapixels is not None and abs(r["megapixels"] - megapixels) < 0.5)):
            return r
    return None


def _ok(row):
    return row is not None and row.get("status") == "ok"


def speedups(results):
    """Per image and k: how many times faster numba auto is than every other method."""
    out = []
    for im in results["images"]:
        for k in results["mode"]["ks"]:
            base = _find(results["runs"], HEADLINE, k, image=im["name"])
            if not _ok(base):
                continue
            row = dict(image=im["name"], megapixels=im["megapixels"], k=k,
                       numba_s=base["median_s"], vs={})
            for key in results["methods"]:
                other = _find(results["runs"], key, k, image=im["name"])
                if key != HEADLINE and _ok(other):
                    row["vs"][key] = other["median_s"] / base["median_s"]
            out.append(row)
    return out


def _target(name, measured, met, note="", issue=""):
    status = "not measured" if met is None else "met" if met else "NOT met"
    return dict(issue=issue, target=name, measured=measured, status=status, note=note)


# the issues the targets come from, in table order
ENGINE_1 = "engine, first pass"
ISSUE_8 = "8: engine, second pass"
ISSUE_10 = "10: end to end"
ISSUE_9 = "9: batch"


def targets(results):
    """Every target, each measured or not: the first engine targets (10 steps from
    the shared centres), then issues 8, 10 and 9 (24 MP, 2 cores, one run)."""
    return (_engine_targets(results) + _issue8_targets(results)
            + _issue10_targets(results) + _issue9_targets(results))


def _runs_at(results, at=TARGET_MP):
    runs = results["runs"]

    def row(method, k):
        r = _find(runs, method, k, megapixels=at)
        return r if _ok(r) else None

    def why_not(method, k):
        r = _find(runs, method, k, megapixels=at)
        if r is None:
            return f"no {at} MP run of {method} with k={k} in this run"
        return r.get("reason", r.get("status"))
    return row, why_not


def _engine_targets(results):
    runs = results["runs"]
    at = TARGET_MP
    row, why_not = _runs_at(results)

    def steps_note(r):
        steps = results["mode"]["steps"]
        if r.get("steps_run") is not None and r["steps_run"] < steps:
            return f"converged after {r['steps_run']} of {steps} steps"
        return ""

    out = []
    for k, limit in ((16, 0.25), (256, 0.8)):
        name, r = f"numba auto, k={k}, <= {limit:g} s", row(HEADLINE, k)
        out.append(_target(name, seconds(r["median_s"]), r["median_s"] <= limit, steps_note(r))
                   if r else _target(name, "-", None, why_not(HEADLINE, k)))

    a16 = row(HEADLINE, 16)
    sk = row("sklearn", 16)
    if a16 and sk:
        ratio = sk["median_s"] / a16["median_s"]
        out.append(_target(">= 30x scikit-learn (k=16, same run)", times(ratio), ratio >= 30,
                           f"scikit-learn {seconds(sk['median_s'])}, {sk['steps_run']} steps"))
    else:
        out.append(_target(">= 30x scikit-learn (k=16, same run)", "-", None,
                           why_not("sklearn", 16) if a16 else why_not(HEADLINE, 16)))

    px = row("numba-pixels", 16)
    if px and px.get("steps_run"):
        per_step = px["median_s"] / px["steps_run"]
        out.append(_target("pixel path <= 0.25 s per step (k=16)", seconds(per_step),
                           per_step <= 0.25,
                           f"{seconds(px['median_s'])} for {px['steps_run']} steps "
                           "(includes the final assignment)"))
    else:
        out.append(_target("pixel path <= 0.25 s per step (k=16)", "-", None,
                           why_not("numba-pixels", 16)))

    ref = row(REFERENCE, 16)
    name = ">= 100x the NumPy reference (k=16)"
    if a16 and ref:
        ratio = ref["median_s"] / a16["median_s"]
        out.append(_target(name, times(ratio), ratio >= 100,
                           f"reference {seconds(ref['median_s'])}"))
    else:
        note = why_not(REFERENCE, 16)
        skipped = _find(runs, REFERENCE, 16, megapixels=at)
        if a16 and skipped and skipped.get("estimate_s"):
            note += (f"; estimated from a smaller image: ~"
                     f"{times(skipped['estimate_s'] / a16['median_s'])}")
        measured = [s for s in speedups(results) if s["k"] == 16 and REFERENCE in s["vs"]]
        if measured:
            big = max(measured, key=lambda s: s["megapixels"])
            note += f"; measured {times(big['vs'][REFERENCE])} at {big['image']}"
        out.append(_target(name, "-", None, note))

    mem_name = "added peak memory <= image size (numba auto, k=16)"
    if a16:
        extra = [f"k={r['k']}: {r['added_bytes'] / MB:.0f} MB"
                 for r in runs if _ok(r) and r["method"] == HEADLINE and r["k"] != 16
                 and abs(r["megapixels"] - at) < 0.5]
        out.append(_target(mem_name, f"{a16['added_bytes'] / MB:.0f} MB of "
                                     f"{a16['image_bytes'] / MB:.0f} MB",
                           a16["added_bytes"] <= a16["image_bytes"], "; ".join(extra)))
    else:
        out.append(_target(mem_name, "-", None, why_not(HEADLINE, 16)))
    for t in out:
        t["issue"] = ENGINE_1
    return out


def _judged(target, off):
    """``target`` with its verdict withheld when the run was not the target's own
    (``off``: why not): the numbers stay, the status is "not measured"."""
    if off and target["status"] != "not measured":
        target = dict(target, status="not measured",
                      note=f"{off}; would be {target['status']}"
                           + (f"; {target['note']}" if target["note"] else ""))
    return target


def _off_target(section):
    """Why a section's image is not the targets' (None when it is)."""
    mp = section.get("megapixels")
    if mp is None or abs(mp - TARGET_MP) < 0.5:
        return None
    return f"measured on {section.get('image_name', f'{mp:g} MP')}, not {TARGET_MP} MP"


def _phases_note(r):
    p = r.get("phases")
    if not p:
        return ""
    return (f"histogram + init {seconds(p['before_steps_s'])}, steps "
            f"{seconds(p['steps_s'])}, labels {seconds(p['after_steps_s'])}")


def _issue8_targets(results):
    row, why_not = _runs_at(results)
    out = []
    for k, limit in ((16, 0.25), (256, 0.5)):
        name, r = f"defaults, k={k}, <= {limit:g} s", row(DEFAULTS, k)
        if r:
            note = f"{r['steps_run']} steps run; " + _phases_note(r)
            out.append(_target(name, seconds(r["median_s"]), r["median_s"] <= limit, note))
        else:
            out.append(_target(name, "-", None, why_not(DEFAULTS, k)))

    name = ">= 5x faster than libimagequant (defaults, k=256, same run)"
    d, liq, liq_def = row(DEFAULTS, 256), row("imagequant", 256), row("imagequant-defaults", 256)
    judged = liq or liq_def
    if d and judged:
        ratio = judged["median_s"] / d["median_s"]
        notes = [f"libimagequant {'undithered' if liq else 'defaults'} "
                 f"{seconds(judged['median_s'])}"]
        if liq and liq_def:
            notes.append(f"its defaults (dithering 1.0) {seconds(liq_def['median_s'])}: "
                         f"{times(liq_def['median_s'] / d['median_s'])}")
        out.append(_target(name, times(ratio), ratio >= 5, "; ".join(notes)))
    else:
        out.append(_target(name, "-", None, why_not(DEFAULTS, 256) if not d
                           else why_not("imagequant", 256)))

    busy = results.get("busy") or {}
    name = "defaults, k=256, one core busy: <= 2x quiet (same run)"
    if busy.get("status") == "ok":
        note = (f"quiet {seconds(busy['quiet_median_s'])}, busy "
                f"{seconds(busy['busy_median_s'])}: medians of {len(busy['busy_s'])} "
                f"interleaved pairs, {busy.get('image_name', '?')}")
        off = _off_target(busy) or (f"measured at k={busy['k']}, not 256"
                                    if busy["k"] != 256 else None)
        out.append(_judged(_target(name, f"{busy['ratio']:.2f}x", busy["ratio"] <= 2.0, note),
                           off))
    else:
        out.append(_target(name, "-", None, busy.get("reason", "not run")))

    name = "histogram Lloyd, k=256, 10 steps <= 0.15 s (the whole call)"
    h = row("numba-histogram", 256)
    if h:
        p = h.get("phases")
        note = "quantize(image, 256, init=<shared centres>, steps=10, method='histogram')"
        if p:
            note += (f"; the 10 steps alone {seconds(p['steps_s'])} "
                     f"({'met' if p['steps_s'] <= 0.15 else 'NOT met'} on their own); "
                     f"histogram + tree {seconds(p['before_steps_s'])}, labels "
                     f"{seconds(p['after_steps_s'])}")
        if results["mode"]["steps"] != 10:
            note += f"; this run used {results['mode']['steps']} steps"
        out.append(_target(name, seconds(h["median_s"]), h["median_s"] <= 0.15, note))
    else:
        out.append(_target(name, "-", None, why_not("numba-histogram", 256)))
    for t in out:
        t["issue"] = ISSUE_8
    return out


def command_row(commands, what, input_, k):
    for r in (commands or {}).get("rows", []):
        if (r["what"], r["input"], r["k"]) == (what, input_, k) and r["status"] == "ok":
            return r
    return None


def baseline_bytes(commands):
    """(fixed-cost baseline, its name, import-only baseline) peak RSS in bytes."""
    tiny = next((r for r in (commands or {}).get("rows", [])
                 if r["what"] == "command baseline" and r["status"] == "ok"), None)
    imp = command_row(commands, "import baseline", "-", 0)
    imp_bytes = imp["peak_rss_bytes"] if imp else None
    if tiny:
        return tiny["peak_rss_bytes"], f"the command on a {tiny['input']}", imp_bytes
    return imp_bytes, "the interpreter with the command's modules imported", imp_bytes


def _issue10_targets(results):
    cm = results.get("commands") or {}
    e2e = results.get("e2e") or {}
    out = []
    ks = results["mode"]["ks"]
    why = cm.get("reason", "not run")
    for input_ in ("PNG", "JPEG"):
        name = f"command (JPEG comparison included) <= 1.3x its floor, k=16, {input_} input"
        c, f = command_row(cm, "command", input_, 16), command_row(cm, "floor", input_, 16)
        if c and f:
            ratio = c["median_s"] / f["median_s"]
            notes = [f"command {seconds(c['median_s'])}, floor {seconds(f['median_s'])} "
                     f"(CPU time {c['cpu_s'] / f['cpu_s']:.2f}x)"]
            for k in ks:
                c2, f2 = command_row(cm, "command", input_, k), command_row(cm, "floor", input_, k)
                if k != 16 and c2 and f2:
                    notes.append(f"k={k}: {c2['median_s'] / f2['median_s']:.2f}x "
                                 f"({seconds(c2['median_s'])} / {seconds(f2['median_s'])})")
            out.append(_judged(_target(name, f"{ratio:.2f}x", ratio <= 1.3, "; ".join(notes)),
                               _off_target(cm)))
        else:
            out.append(_target(name, "-", None, why if cm.get("status") != "ok"
                               else "no k=16 command and floor run"))
    for k in (16, 256):
        # like for like: undithered k-means (--plain) against undithered pngquant, each
        # writing only its PNG; the defaults (dithered) against pngquant's own below
        name = f"command --plain >= 4x faster than pngquant --nofs, k={k}, 24 MP PNG"
        c = command_row(cm, "command --plain --no-jpeg", "PNG", k)
        q = command_row(cm, "pngquant --nofs", "PNG", k)
        if c and q:
            ratio = q["median_s"] / c["median_s"]
            note = (f"pngquant --nofs {seconds(q['median_s'])}, "
                    f"command --plain --no-jpeg {seconds(c['median_s'])}")
            d = command_row(cm, "command --no-jpeg", "PNG", k)
            qd = command_row(cm, "pngquant", "PNG", k)
            if d and qd:
                note += (f"; dithered: pngquant {seconds(qd['median_s'])}, the defaults "
                         f"--no-jpeg {seconds(d['median_s'])} "
                         f"({times(qd['median_s'] / d['median_s'])})")
            out.append(_judged(_target(name, times(ratio), ratio >= 4, note), _off_target(cm)))
        else:
            reason = why if cm.get("status") != "ok" else (
                f"no k={k} command run" if not c else f"pngquant: {cm.get('pngquant')}")
            out.append(_target(name, "-", None, reason))

    png_rows = e2e.get("png", []) if e2e.get("status") == "ok" else []
    for r in png_rows:
        name = f"PNG encode >= 4x faster than Pillow level 6, size within 2%, k={r['k']}"
        met = r["speedup"] >= 4 and r["size_vs_pillow"] <= 1.02
        out.append(_judged(_target(
            name, f"{times(r['speedup'])}, {r['size_vs_pillow'] - 1:+.1%} bytes", met,
            f"Pillow {seconds(r['pillow_s'])}, encode_png {seconds(r['encode_png_s'])}"),
            _off_target(e2e)))
    if not png_rows:
        out.append(_target("PNG encode >= 4x faster than Pillow level 6, size within 2%", "-",
                           None, e2e.get("reason", "not run")))
    for r in png_rows:
        name = f"--optimize >= 8% smaller, k={r['k']}"
        if "optimize_gain" in r:
            out.append(_judged(_target(
                name, f"{r['optimize_gain']:.1%}", r["optimize_gain"] >= 0.08,
                f"{r['encode_png_bytes']:,} -> {r['optimize_bytes']:,} bytes in "
                f"{seconds(r['optimize_s'])}"), _off_target(e2e)))
    out += _memory_targets(results, cm)
    for t in out:
        t["issue"] = ISSUE_10
    return out


def _memory_targets(results, cm):
    out = []
    base, base_name, imp = baseline_bytes(cm)
    name = f"peak RSS of the command, {TARGET_MP} MP: <= 3x decoded + baseline"
    rows = [r for r in cm.get("rows", [])
            if r["what"] in ("command", "command --no-jpeg") and r["status"] == "ok"]
    decoded = cm.get("decoded_bytes")
    if rows and base and decoded:
        worst = max(rows, key=lambda r: r["peak_rss_bytes"])
        limit = 3 * decoded + base
        note = (f"largest of {len(rows)} command runs: {worst['what']}, {worst['input']}, "
                f"k={worst['k']}; limit 3 x {mb(decoded)} + {mb(base)} ({base_name}) = "
                f"{mb(limit)}")
        if imp and imp != base:
            note += (f"; with the import-only baseline {mb(imp)}: limit {mb(3 * decoded + imp)}, "
                     f"{'met' if worst['peak_rss_bytes'] <= 3 * decoded + imp else 'NOT met'}")
        out.append(_judged(_target(name, mb(worst["peak_rss_bytes"]),
                                   worst["peak_rss_bytes"] <= limit, note), _off_target(cm)))
    else:
        out.append(_target(name, "-", None, cm.get("reason", "no command run with a baseline")))
    name = "peak RSS of the command, 96 MP: <= 2x decoded + 300 MB"
    big = [r for r in cm.get("memory", []) if r["status"] == "ok"
           and abs(r["megapixels"] - 96) < 0.5]
    if big:
        worst = max(big, key=lambda r: r["peak_rss_bytes"])
        limit = 2 * worst["decoded_bytes"] + 300 * MB
        note = "; ".join(f"{r['input']} input {mb(r['peak_rss_bytes'])} in "
                         f"{seconds(r['seconds'])}" for r in big)
        out.append(_target(name, mb(worst["peak_rss_bytes"]),
                           worst["peak_rss_bytes"] <= limit,
                           f"limit 2 x {mb(worst['decoded_bytes'])} + 300 MB = {mb(limit)}; "
                           + note))
    else:
        out.append(_target(name, "-", None, "no 96 MP command run in this mode"
                           if not cm.get("memory") else "the 96 MP runs failed"))
    return out


def _issue9_targets(results):
    b = results.get("batch") or {}
    names = (">= 1.7x the throughput of the one-worker batch (--jobs 1)",
             ">= 5x the throughput of a shell loop of the command",
             "outputs identical (batch, --jobs 1, loop)")
    if b.get("status") != "ok":
        out = [_target(n, "-", None, b.get("reason", "not run")) for n in names]
    else:
        files = f"{b['files']} photos of {b['width']}x{b['height']}, k={b['k']}"
        off = None
        if b["files"] < BATCH_FILES or abs(b["width"] * b["height"] / 1e6 - 1) > 0.1:
            off = f"{b['files']} photos of {b['width']}x{b['height']}, not {BATCH_FILES} of 1 MP"
        out = [
            _target(names[0], f"{b['vs_jobs1']:.2f}x", b["vs_jobs1"] >= 1.7,
                    f"{files}: batch {seconds(b['median_s']['batch'])} "
                    f"({b['default_jobs']} jobs), --jobs 1 {seconds(b['median_s']['jobs1'])}"),
            _target(names[1], times(b["vs_loop"]), b["vs_loop"] >= 5,
                    f"loop over {b['sample']} files {seconds(b['median_s']['loop'])}, scaled "
                    f"to {b['files']}: {seconds(b['loop_scaled_s'])}"),
            _target(names[2], "identical" if b["identical"] else
                    f"{b['n_differ_jobs1']} + {b['n_differ_loop']} differ", b["identical"],
                    f"SHA-256 of {b['outputs']['batch']} files (batch) vs "
                    f"{b['outputs']['jobs1']} (--jobs 1) and {b['outputs']['loop']} (loop)"
                    + (f"; differ: {', '.join(b['differ_jobs1'] + b['differ_loop'])}"
                       if not b["identical"] else "")),
        ]
        out = [_judged(t, off) for t in out]
    for t in out:
        t["issue"] = ISSUE_9
    return out


# --------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------
def _cell(row):
    if row is None:
        return "-"
    if row.get("status") == "ok":
        return seconds(row["median_s"])
    if row.get("status") == "skipped":
        est = row.get("estimate_s")
        return f"skipped (~{est:.0f} s)" if est else "skipped"
    return row.get("status", "?")


def _machine_md(results):
    m = results["machine"]
    threads = ", ".join(f"{k} {v}" for k, v in m["threads"].items())
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    loads = results.get("loads") or {}
    lines = [
        f"- CPU: {m['cpu']}; {m['cores']} usable cores ({m['logical_cpus']} logical CPUs); "
        f"{m['memory_gib']} GiB RAM; {m['os']}",
        f"- Threads: {threads}" + (f" (--threads {results['threads_option']})"
                                   if results.get("threads_option") else ""),
        f"- Versions: {versions}",
        f"- Load average (1 min) at start / end: {results.get('load_start', '?')} / "
        f"{results.get('load_end', '?')}" + (" - other work was running: timings may be "
                                              "noisy" if _busy(results) else ""),
    ]
    if loads:
        lines.append("- Load average (1 min) as each section started (it includes the "
                     "suite's own work of the minute before): "
                     + ", ".join(f"{k} {v}" for k, v in loads.items()))
    return "\n".join(lines)


def _busy(results):
    """True when the machine was visibly busy with other work when the run started
    (later loads include the suite's own processes)."""
    load = results.get("load_start")
    return load is not None and load > 0.5


def _notes(results):
    """Caveats every reader of these numbers needs."""
    notes = []
    if _busy(results):
        notes.append("Other work was running on this machine during the run (see the load "
                     "averages above): timings, the parallel kernels' most of all, are "
                     "slower and noisier than on a quiet machine; ratios measured in the "
                     "same run (interleaved) are the more reliable numbers.")
    cores = results["machine"]["cores"]
    if cores != TARGET_CORES:
        notes.append(f"This machine has {cores} usable cores; the targets are set for "
                     f"{TARGET_CORES}.")
    if results["mode"]["name"] != "full":
        notes.append(f"A {results['mode']['name']} run: fewer sizes, k and repeats than the "
                     "full run (medians of 1-3 runs); it never writes benchmarks/results.")
    b = results.get("batch") or {}
    if b.get("status") == "ok" and b["sample"] < b["files"]:
        notes.append(f"The shell loop ran the command on {b['sample']} of the {b['files']} "
                     f"files; its total is that time x {b['files']}/{b['sample']}.")
    cm = results.get("commands") or {}
    if cm.get("status") == "ok":
        base, base_name, imp = baseline_bytes(cm)
        if base != imp:
            notes.append(f"Peak RSS baseline: {base_name} ({mb(base)}: the interpreter, "
                         "libraries and compiled kernels, which do not grow with the "
                         f"image); the import-only baseline ({mb(imp)}) is judged beside it.")
        else:
            notes.append(f"Peak RSS baseline: {base_name} ({mb(base)}).")
        notes.append("The floor is a fresh interpreter running only import, read_image, "
                     "quantize(image, k, seed=0), encode_png and a plain write (no fsync): "
                     "see `FLOOR_SCRIPT` in benchmarks/commands.py.")
    return notes


def _row_cells(r, methods):
    if r.get("status") != "ok":
        return [r["image"], r["k"], methods[r["method"]]["label"], "-", "-", "-", "-", "-",
                "-", r.get("reason", r.get("status"))]
    notes = [f"path {r['path']}"] if r.get("path") else []
    if r.get("phases"):
        notes.append(_phases_note(r))
    steps = r.get("steps_run")
    added = r["added_bytes"]
    return [r["image"], r["k"], methods[r["method"]]["label"],
            f"{seconds(r['median_s'])} ({seconds(r['min_s'])})", len(r["times_s"]),
            "n/a" if steps is None else steps,
            f"{added / MB:.0f} ({added / r['image_bytes']:.2f}x)", f"{r['psnr_db']:.2f}",
            r["threads"], "; ".join(notes)]


def markdown(results):
    mode = results["mode"]
    runs = results["runs"]
    methods = results["methods"]
    out = [
        "# kmeans_fast benchmark results", "",
        f"`{results['command']}` on {results['date']}, {results['duration_s'] / 60:.1f} min. "
        f"Mode **{mode['name']}**: k in {{{', '.join(map(str, mode['ks']))}}}; same-init rows "
        f"run {mode['steps']} Lloyd steps from shared centres, defaults rows their own init "
        f"and steps; median of up to {mode['repeats']} timed runs after a warm-up; runs "
        f"estimated over {mode['budget_s']:g} s are skipped (marked).", "",
        "## Machine", "", _machine_md(results), "",
    ]

    tg = targets(results)
    out += [f"## Targets ({TARGET_MP} MP photo, {TARGET_CORES} cores, one run)", "",
            "Every target of the open issues, judged on this run's numbers alone. "
            "Not measured: this mode or machine did not make the run (the note says why).",
            "", _table(["issue", "target", "measured", "status", "note"],
                       [[t["issue"], t["target"], t["measured"], t["status"], t["note"]]
                        for t in tg]), ""]
    met = sum(t["status"] == "met" for t in tg)
    missed = [t for t in tg if t["status"] == "NOT met"]
    out += [f"{met} met, {len(missed)} not met, {len(tg) - met - len(missed)} not measured.",
            ""]
    notes = _notes(results)
    if notes:
        out += ["### Notes", ""] + [f"- {n}" for n in notes] + [""]

    out += ["## Images", "", _table(
        ["image", "pixels", "MB", "distinct colours", "source"],
        [[im["name"], f"{im['width']}x{im['height']}", f"{im['nbytes'] / MB:.1f}",
          f"{im['n_distinct']:,}", im["source"]] for im in results["images"]]), ""]

    for k in mode["ks"] if methods else ():
        out += [f"## Median time, k={k}", "",
                f"Same-init rows: {mode['steps']} steps from the shared centres. Defaults "
                "rows: the method's own init and steps (what a user gets).", "", _table(
                    ["method"] + [im["name"] for im in results["images"]],
                    [[m["label"]] + [_cell(_find(runs, key, k, image=im["name"]))
                                     for im in results["images"]]
                     for key, m in methods.items()]), ""]

    sp = speedups(results)
    others = [key for key in methods if key != HEADLINE]
    if sp:
        out += ["## How many times faster numba auto is (same run)", "",
                "Other method's median time / numba auto's, same image, k and run.", "", _table(
            ["image", "k", "numba auto"] + others,
            [[s["image"], s["k"], seconds(s["numba_s"])]
             + [times(s["vs"].get(key)) for key in others] for s in sp]), ""]

    if runs:
        out += ["## Every measurement", "",
                "Time: median (and min) of the timed calls; for kmeans_fast, the split of "
                "the median call from its progress callback (histogram + init before the "
                "first step, the Lloyd steps, the final labels). Memory: peak RSS of the "
                "worker process minus its RSS with the image loaded (input conversions a "
                "method needs, such as float32 copies, count).", "",
                _table(["image", "k", "method", "median (min)", "runs", "steps run",
                        "added MB (x image)", "PSNR dB", "threads", "note"],
                       [_row_cells(r, methods) for r in runs]), ""]

    out += _busy_md(results) + _compile_md(results, runs, methods) + _e2e_md(results)
    out += _commands_md(results) + _batch_md(results)

    if methods:
        out += ["## How each method starts", "",
                _table(["method", "initial centres"],
                       [[m["label"], m["init"]] for m in methods.values()]), "",
                f"kmeans_fast's same-init rows ran with **{results['kf_init']}** initial "
                "centres"
                + (" (the same k distinct colours of random pixels, drawn once per image and "
                   f"k with seed {results['seed']}, that scikit-learn gets)."
                   if results["kf_init"] == "shared" else
                   f" (its own seeded random init, seed {results['seed']})."),
                "Times exclude input conversions a user of that library must do anyway "
                "(float32 for scikit-learn and OpenCV, RGBA bytes for imagequant, a PIL image "
                "for Pillow); the memory column includes them. Pillow and imagequant run "
                "their own algorithms (no step count, no initial centres), so compare them "
                "on time and PSNR, not step for step.", ""]
    return "\n".join(out)


def _busy_md(results):
    b = results.get("busy") or {}
    out = ["## One core busy", ""]
    if b.get("status") != "ok":
        return out + [b.get("reason", "not run"), ""]
    pairs = [[i + 1, seconds(q), seconds(x), f"{x / q:.2f}x"]
             for i, (q, x) in enumerate(zip(b["quiet_s"], b["busy_s"]))]
    return out + [
        f"The defaults (`quantize(image, {b['k']})`) on {b.get('image_name', '?')}, "
        f"{b['threads']} threads: a quiet run, then a run while `{b['busy_process']}` "
        "spins in another process (started before, killed after), in turns.", "",
        _table(["pair", "quiet", "one core busy", "busy / quiet"], pairs), "",
        f"Medians: quiet {seconds(b['quiet_median_s'])}, busy "
        f"{seconds(b['busy_median_s'])}: **{b['ratio']:.2f}x**.", ""]


def _compile_md(results, runs, methods):
    out = []
    comp = results.get("compile", {})
    rows = []
    for name, label in (("cold", "empty Numba cache (true JIT compile)"),
                        ("cached", "package's on-disk cache (cache=True)")):
        c = comp.get(name)
        if c and c.get("status") == "ok":
            rows.append([label, seconds(c["first_call_s"]), seconds(c["warm_call_s"]),
                         seconds(c["first_call_s"] - c["warm_call_s"])])
        elif c:
            rows.append([label, "-", "-", c.get("reason", "?")])
    if rows:
        out += ["## JIT compile", "",
                "First and second call of both numba paths (pixels, histogram) on a "
                "128x128 image, in a fresh process; timings above exclude this.", "",
                _table(["cache", "first call", "second call", "compile / load"], rows), ""]
    first = [r["first_call_overhead_s"] for r in runs
             if r.get("status") == "ok" and not methods[r["method"]]["peer"]
             and r["method"] != REFERENCE]
    if first:
        first.sort()
        out += [f"First-call overhead in the numba timing workers (warm cache): median "
                f"{seconds(first[len(first) // 2])}.", ""]
    return out


def _e2e_md(results):
    e2e = results.get("e2e") or {}
    out = ["## End to end, stage by stage (in process)", ""]
    if e2e.get("status") != "ok":
        return out + [e2e.get("reason", "not run"), ""]
    if "breakdown" not in e2e:
        return out + ["(an older results format: rerun the suite)", ""]
    cols = e2e["breakdown"]
    stages = [name for name in cols[0]["stages"] if name != "other"]
    header = ["stage"] + [f"{c['input']} in, k={c['k']}" for c in cols] + ["by"]
    rows = [[name] + [seconds(c["stages"].get(name)) for c in cols]
            + [e2e["stage_by"].get(name, "")]
            for name in stages]
    rows.append(["other (report, bookkeeping)"] + [seconds(c["stages"].get("other"))
                                                   for c in cols] + [""])
    rows.append(["**whole run**"] + [f"**{seconds(c['total_s'])}**" for c in cols] + [""])
    inputs = ", ".join(f"{k} {v / MB:.1f} MB" for k, v in e2e["input_bytes"].items())
    out += [f"`kmeans_fast.pipeline.compress_file` at the command's defaults on "
            f"{e2e['image_name']}; inputs: {inputs}; median of {e2e['repeats']}; stages "
            "timed from the pipeline's own progress messages and report.", "",
            _table(header, rows), "",
            _table(["input", "k", "steps run", "PNG bytes", "PNG PSNR / SSIM", "JPEG bytes",
                    "JPEG PSNR / SSIM"],
                   [[c["input"], c["k"], c["steps_run"], f"{c['png_bytes']:,}",
                     f"{c['psnr']:.2f} / {c['ssim']:.4f}", f"{c['jpeg_bytes']:,}",
                     f"{c['jpeg_psnr']:.2f} / {c['jpeg_ssim']:.4f}"] for c in cols]), ""]
    if e2e.get("png"):
        rows = []
        for r in e2e["png"]:
            rows.append([r["k"], seconds(r["pillow_s"]), f"{r['pillow_bytes']:,}",
                         seconds(r["encode_png_s"]), f"{r['encode_png_bytes']:,}",
                         times(r["speedup"]), f"{r['size_vs_pillow'] - 1:+.2%}",
                         seconds(r.get("optimize_s")),
                         f"{r['optimize_bytes']:,}" if "optimize_bytes" in r else "-",
                         f"{r['optimize_gain']:.1%}" if "optimize_gain" in r else "-"])
        out += ["### PNG encoding of the labels", "",
                f"Labels of `quantize(image, k)` on {e2e['image_name']}; Pillow (zlib level "
                "6, smallest bit depth) and `kmeans_fast.png.encode_png` at its default, "
                "interleaved (`benchmarks.png_encode.measure`), median of "
                f"{e2e['repeats']}; `optimize=True` (oxipng) once.", "",
                _table(["k", "Pillow", "Pillow bytes", "encode_png", "bytes", "faster",
                        "size vs Pillow", "optimize=True", "bytes", "smaller"], rows), ""]
    return out


def _commands_md(results):
    cm = results.get("commands") or {}
    out = ["## Whole commands (fresh processes)", ""]
    if cm.get("status") != "ok":
        return out + [cm.get("reason", "not run"), ""]
    rows = []
    for r in cm["rows"]:
        if r["status"] != "ok":
            rows.append([r["what"], r["input"], r["k"] or "-", "-", "-", "-", "-",
                         r.get("reason", "")])
            continue
        c = command_row(cm, "command", r["input"], r["k"])
        rel = f"{r['median_s'] / c['median_s']:.2f}x" if c and r["what"] != "command" else ""
        rows.append([r["what"], r["input"], r["k"] or "-", seconds(r["median_s"]),
                     seconds(r["min_s"]), seconds(r["cpu_s"]), mb(r["peak_rss_bytes"]), rel])
    inputs = ", ".join(f"{k} {v['bytes'] / MB:.1f} MB" for k, v in cm["inputs"].items())
    out += [f"On {cm.get('image_name', '?')}: {inputs}, decoded {mb(cm['decoded_bytes'])}; "
            f"median of {cm['repeats']} interleaved round(s). `command`: "
            "`python -m kmeans_fast compress IN -k K --out-dir DIR` (the command's defaults, "
            "JPEG comparison included: Oklab, Floyd-Steinberg); `--plain`: undithered "
            "k-means; `floor`: the floor script (the defaults' look); `pngquant --nofs` "
            f"and `pngquant` (dithered): {cm['pngquant']}, default speed; baselines for "
            "the peak RSS. Peak RSS: "
            "`/usr/bin/time -f %M` (\"Maximum resident set size\"). Last column: this "
            "row's time / the command's, same input and k.", "",
            _table(["run", "input", "k", "median", "min", "CPU s", "peak RSS", "vs command"],
                   rows), ""]
    if cm.get("memory"):
        out += ["### Peak memory on larger photos", "",
                _table(["photo", "input", "k", "seconds", "peak RSS", "decoded", "peak / decoded"],
                       [[f"{r['megapixels']:g} MP", r["input"], r["k"], seconds(r["seconds"]),
                         mb(r["peak_rss_bytes"]), mb(r["decoded_bytes"]),
                         f"{r['peak_rss_bytes'] / r['decoded_bytes']:.2f}x"]
                        for r in cm["memory"] if r["status"] == "ok"]), ""]
    return out


def _batch_md(results):
    b = results.get("batch") or {}
    out = ["## Batch throughput", ""]
    if b.get("status") != "ok":
        return out + [b.get("reason", "not run"), ""]
    rows = [["batch (default jobs: " f"{b['default_jobs']})", b["files"],
             seconds(b["median_s"]["batch"]), f"{b['files_per_s']['batch']:.2f}", "1.00x"],
            ["batch --jobs 1", b["files"], seconds(b["median_s"]["jobs1"]),
             f"{b['files_per_s']['jobs1']:.2f}",
             f"{b['median_s']['batch'] / b['median_s']['jobs1']:.2f}x"],
            [f"shell loop, one command per file ({b['sample']} files, scaled)", b["files"],
             f"~{seconds(b['loop_scaled_s'])}", f"{b['files_per_s']['loop']:.2f}",
             f"{b['median_s']['batch'] / b['loop_scaled_s']:.2f}x"]]
    return out + [
        f"{b['files']} generated photos ({b['width']}x{b['height']} JPEG, "
        f"`benchmarks/throughput.py`), `kmeans-fast compress DIR -k {b['k']} --out-dir ...`, "
        f"median of {b['repeats']} round(s).", "",
        _table(["run", "files", "seconds", "files / s", "throughput vs batch"], rows), "",
        "Outputs: " + ("identical (SHA-256) in all three runs." if b["identical"] else
                       f"{b['n_differ_jobs1']} files differ between the batch and --jobs 1, "
                       f"{b['n_differ_loop']} between the batch and the loop."), ""]


# --------------------------------------------------------------------------
# chart
# --------------------------------------------------------------------------
def chart(results, path):
    """Time against megapixels, log-log, one line per method, one panel per k."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import matplotlib.ticker
    ks = results["mode"]["ks"]
    sizes = sorted({im["megapixels"] for im in results["images"]})
    fig, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks), 3.8), squeeze=False,
                             sharey=True)
    colours = plt.get_cmap("tab10").colors
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    for ax, k in zip(axes[0], ks):
        for i, (key, m) in enumerate(results["methods"].items()):
            pts = sorted((r["megapixels"], r["median_s"]) for r in results["runs"]
                         if r["method"] == key and r["k"] == k and r.get("status") == "ok")
            # every method keeps its colour in every panel, even where others are missing
            ax.plot(*(zip(*pts) if pts else ([], [])), marker="o", ms=3, lw=1.2,
                    label=m["label"], color=colours[i % len(colours)],
                    ls="--" if m["peer"] else "-")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{x:.2g}" for x in sizes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"k={k} (same-init: {results['mode']['steps']} steps)", fontsize=9)
        ax.set_xlabel("megapixels", fontsize=8)
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("median seconds", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    m = results["machine"]
    fig.suptitle(f"kmeans_fast benchmarks - {m['cpu']}, {m['cores']} cores", fontsize=9)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write(results, out):
    """Write results.json, RESULTS.md and the chart into ``out``; return the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = dict(results, targets=targets(results))
    paths = [out / "results.json", out / "RESULTS.md"]
    paths[0].write_text(json.dumps(results, indent=1, default=str) + "\n")
    paths[1].write_text(markdown(results) + "\n")
    png = chart(results, out / "time_vs_megapixels.png")
    return paths + ([png] if png else [])
