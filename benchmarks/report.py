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
    return ", ".join(f"{s['stage']} {seconds(s['median_s'])}" for s in row["stages"])


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


def _target(name, measured, met, note=""):
    status = "not measured" if met is None else "met" if met else "NOT met"
    return dict(target=name, measured=measured, status=status, note=note)


def targets(results):
    """The engine issue's targets (24 MP, 2 cores, 10 steps), each measured or not."""
    runs = results["runs"]
    at = TARGET_MP

    def row(method, k):
        r = _find(runs, method, k, megapixels=at)
        return r if _ok(r) else None

    def why_not(method, k):
        r = _find(runs, method, k, megapixels=at)
        if r is None:
            return f"no {at} MP run with k={k} in this mode"
        return r.get("reason", r.get("status"))

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
    return "\n".join([
        f"- CPU: {m['cpu']}; {m['cores']} usable cores ({m['logical_cpus']} logical CPUs); "
        f"{m['memory_gib']} GiB RAM; {m['os']}",
        f"- Threads: {threads}" + (f" (--threads {results['threads_option']})"
                                   if results.get("threads_option") else ""),
        f"- Versions: {versions}",
        f"- Load average (1 min) at start / end: {results.get('load_start', '?')} / "
        f"{results.get('load_end', '?')}" + (" - other work was running: timings may be "
                                              "noisy" if _busy(results) else ""),
    ])


def _busy(results):
    """True when the machine was visibly busy with other work during the run."""
    load = results.get("load_start")  # at the end, the load includes this run
    return load is not None and load > 0.5


def markdown(results):
    mode = results["mode"]
    runs = results["runs"]
    methods = results["methods"]
    out = [
        "# kmeans_fast benchmark results", "",
        f"`{results['command']}` on {results['date']}, {results['duration_s'] / 60:.1f} min. "
        f"Mode **{mode['name']}**: k in {{{', '.join(map(str, mode['ks']))}}}, "
        f"{mode['steps']} Lloyd steps, median of up to {mode['repeats']} timed runs after a "
        f"warm-up; runs estimated over {mode['budget_s']:g} s are skipped (marked).", "",
        "## Machine", "", _machine_md(results), "",
    ]

    tg = targets(results)
    cores = results["machine"]["cores"]
    out += [f"## Targets ({TARGET_MP} MP, {TARGET_CORES} cores, {TARGET_STEPS} steps)", ""]
    if cores != TARGET_CORES:
        out += [f"This machine has {cores} usable cores; the targets are set for "
                f"{TARGET_CORES}.", ""]
    if mode["steps"] != TARGET_STEPS:
        out += [f"This run used {mode['steps']} steps; the targets are set for "
                f"{TARGET_STEPS}.", ""]
    out += [_table(["target", "measured", "status", "note"],
                   [[t["target"], t["measured"], t["status"], t["note"]] for t in tg]), ""]

    out += ["## Images", "", _table(
        ["image", "pixels", "MB", "distinct colours", "source"],
        [[im["name"], f"{im['width']}x{im['height']}", f"{im['nbytes'] / MB:.1f}",
          f"{im['n_distinct']:,}", im["source"]] for im in results["images"]]), ""]

    for k in mode["ks"]:
        out += [f"## Median time, k={k}, {mode['steps']} steps", "", _table(
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

    out += ["## Every measurement", "",
            "Time: median (and min) of the timed calls. Memory: peak RSS of the worker "
            "process minus its RSS with the image loaded (input conversions a method needs, "
            "such as float32 copies, count).", ""]
    detail = []
    for r in runs:
        if r.get("status") == "ok":
            note = f"path {r['path']}" if r.get("path") else ""
            steps = r.get("steps_run")
            added = r["added_bytes"]
            detail.append([r["image"], r["k"], methods[r["method"]]["label"],
                           f"{seconds(r['median_s'])} ({seconds(r['min_s'])})",
                           len(r["times_s"]), "n/a" if steps is None else steps,
                           f"{added / MB:.0f} ({added / r['image_bytes']:.2f}x)",
                           f"{r['psnr_db']:.2f}", r["threads"], note])
        else:
            detail.append([r["image"], r["k"], methods[r["method"]]["label"], "-", "-", "-",
                           "-", "-", "-", r.get("reason", r.get("status"))])
    out += [_table(["image", "k", "method", "median (min)", "runs", "steps run",
                    "added MB (x image)", "PSNR dB", "threads", "note"], detail), ""]

    out += ["## JIT compile", ""]
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
        out += ["First and second call of both numba paths (pixels, histogram) on a "
                "128x128 image, in a fresh process; timings above exclude this.", "",
                _table(["cache", "first call", "second call", "compile / load"], rows), ""]
    first = [r["first_call_overhead_s"] for r in runs
             if r.get("status") == "ok" and not methods[r["method"]]["peer"]
             and r["method"] != REFERENCE]
    if first:
        first.sort()
        out += [f"First-call overhead in the numba timing workers (warm cache): median "
                f"{seconds(first[len(first) // 2])}.", ""]

    e2e = results.get("e2e") or {}
    out += ["## End to end (what `kmeans-fast` does with one photo)", ""]
    if e2e.get("status") == "ok":
        scores = ", ".join(f"{k} {v:.3f}" for k, v in e2e["scores"].items())
        sizes = ", ".join(f"{k} {v / MB:.1f} MB" for k, v in e2e["bytes"].items())
        out += [f"{e2e['image_name']}, k={e2e['k']}, {e2e['steps']} steps "
                f"({e2e['steps_run']} run, {e2e['path']} path), median of "
                f"{e2e['repeats']}; {scores}; {sizes}.", "",
                _table(["stage", "median", "by"],
                       [[s["stage"], seconds(s["median_s"]), s["by"]] for s in e2e["stages"]]
                       + [["total (without read PNG)", seconds(e2e["total_s"]), ""]]), ""]
    else:
        out += [e2e.get("reason", "not run"), ""]

    out += ["## How each method starts", "",
            _table(["method", "initial centres"],
                   [[m["label"], m["init"]] for m in methods.values()]), "",
            f"kmeans_fast ran with **{results['kf_init']}** initial centres"
            + (" (the same k distinct colours of random pixels, drawn once per image and k "
               f"with seed {results['seed']}, that scikit-learn gets)."
               if results["kf_init"] == "shared" else
               f" (its own seeded random init, seed {results['seed']}: this kmeans_fast does "
               "not accept an array of centres)."),
            "Times exclude input conversions a user of that library must do anyway "
            "(float32 for scikit-learn and OpenCV, RGBA bytes for imagequant, a PIL image "
            "for Pillow); the memory column includes them. Pillow and imagequant run "
            "their own algorithms (no step count, no initial centres), so compare them on "
            "time and PSNR, not step for step.", ""]
    return "\n".join(out)


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
        ax.set_title(f"k={k}, {results['mode']['steps']} steps", fontsize=9)
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
