#!/usr/bin/python3
# (Debian's python3 on purpose: python3-matplotlib is installed for it.)
"""Figures for docs/BENCHMARKS.md from `vdtu bench SUITE --json` output.

    scripts/plot.py                  # redraw docs/figures/*.png from docs/figures/data/*.jsonl
    scripts/plot.py --run build      # measure again with build/vdtu first (about 10 minutes), then draw
    scripts/plot.py --run build --suites caps,spanning   # only these again
    scripts/plot.py --out DIR A.jsonl B.jsonl   # draw from any saved output

Input lines are the JSON objects `vdtu bench --json` prints (other lines are
ignored); with `--quantiles` they carry every percentile of a latency result,
and those become CDFs. Figures:

  <suite>_cdf.png     latency CDFs, one curve per result that has quantiles
  chain_revoke.png    chain revocation time against chain depth: one kernel
                      (caps), two kernels on one node and across two nodes
                      (spanning); the median, the band up to p99
  scale.png           every other series NAME_<number> with at least two
                      points (e.g. tree revoke against tree size)
  scale_curve.png     `vdtu bench scale`: aggregate exchange+revoke pairs per
                      second and the 10 000-capability tree revoke against the
                      number of kernels on one node; the four-node cluster as
                      a point of its own
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"
SUITES = ["channel", "dtu", "caps", "spanning"]  # the ones with latency samples and series
# A PNG without the matplotlib version in it: redrawing the same data gives the same file.
SAVE = {"dpi": 110, "metadata": {"Software": None}}
CHAINS = [  # (suite, name prefix, label)
    ("caps", "chain_revoke_", "one kernel"),
    ("spanning", "kernels_chain_revoke_", "two kernels, one node"),
    ("spanning", "nodes_chain_revoke_", "two nodes (UDP bridge)"),
]
SERIES = re.compile(r"^(?P<base>.+)_(?P<x>\d+)$")


def read_results(paths):
    results = []
    for path in paths:
        for number, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{number}: not JSON: {e}")
            missing = {"suite", "name", "unit", "median", "p99", "n"} - r.keys()
            if missing:
                sys.exit(f"{path}:{number}: missing {', '.join(sorted(missing))}")
            results.append(r)
    return results


def cdfs(results, out):
    written = []
    for suite in sorted({r["suite"] for r in results}):
        curves = [r for r in results if r["suite"] == suite and r.get("quantiles") and r["unit"] == "us"]
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(10, 5))
        for n, r in enumerate(curves):
            q = r["quantiles"]
            # Ten colours, then the next line style: no two curves look alike.
            ax.plot(q, [i / (len(q) - 1) for i in range(len(q))], label=r["name"],
                    linestyle=["-", "--", ":"][n // 10 % 3])
        ax.set_xscale("log")
        ax.set_xlabel("latency (µs, log scale)")
        ax.set_ylabel("share of samples at or below")
        ax.set_title(f"vdtu bench {suite}: latency CDFs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
        path = out / f"{suite}_cdf.png"
        fig.savefig(path, **SAVE)
        plt.close(fig)
        written.append(path)
    return written


def points(results, suite, prefix):
    found = []
    for r in results:
        if r["suite"] == suite and r["name"].startswith(prefix) and r["name"][len(prefix):].isdigit():
            found.append((int(r["name"][len(prefix):]), r["median"], r["p99"]))
    return sorted(found)


def chain_revoke(results, out):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for suite, prefix, label in CHAINS:
        p = points(results, suite, prefix)
        if len(p) < 2:
            continue
        xs, medians, p99s = zip(*p)
        ax.plot(xs, medians, marker="o", label=f"{label}: median")
        ax.fill_between(xs, medians, p99s, alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return []
    ax.set_yscale("log")  # a long p99 must not flatten the medians
    ax.set_xlabel("chain depth (capabilities)")
    ax.set_ylabel("revoke time (µs, log scale)")
    ax.set_title("Chain revocation vs depth (band: median to p99)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "chain_revoke.png"
    fig.savefig(path, **SAVE)
    plt.close(fig)
    return [path]


def scale(results, out):
    chains = {(s, p) for s, p, _ in CHAINS}
    groups = {}
    for r in results:
        m = SERIES.match(r["name"])
        if not m or (r["suite"], m["base"] + "_") in chains:
            continue
        groups.setdefault((r["suite"], m["base"], r["unit"]), []).append((int(m["x"]), r["median"], r["p99"]))
    groups = {k: sorted(v) for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return []
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 3.2 * len(groups)), squeeze=False)
    for ax, ((suite, base, unit), p) in zip(axes[:, 0], sorted(groups.items())):
        xs, medians, p99s = zip(*p)
        ax.plot(xs, medians, marker="o", label="median")
        ax.plot(xs, p99s, marker="x", linestyle="--", label="p99")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{base}: size (log scale)")
        ax.set_ylabel(f"{unit} (log scale)")
        ax.set_title(f"{suite}: {base}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "scale.png"
    fig.savefig(path, **SAVE)
    plt.close(fig)
    return [path]


ONE_NODE = re.compile(r"^kernels_(?P<kernels>\d+)_vpes_(?P<vpes>\d+)_(?P<metric>pairs_per_s|tree_revoke)$")
NODES = re.compile(r"^nodes_(?P<nodes>\d+)x(?P<per>\d+)_vpes_(?P<vpes>\d+)_(?P<metric>pairs_per_s|tree_revoke)$")


def scale_curve(results, out):
    one_node, nodes = {}, {}
    for r in results:
        if r["suite"] != "scale":
            continue
        if m := ONE_NODE.match(r["name"]):
            one_node.setdefault(m["metric"], []).append((int(m["kernels"]), r["median"], int(m["vpes"])))
        elif m := NODES.match(r["name"]):
            kernels = int(m["nodes"]) * int(m["per"])
            nodes.setdefault(m["metric"], []).append((kernels, r["median"], m["nodes"], int(m["vpes"])))
    if len(one_node.get("pairs_per_s", [])) < 2:
        return []
    panels = [("pairs_per_s", "aggregate exchange+revoke pairs (k/s)"), ("tree_revoke", "revoke 10 000 caps (ms)")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (metric, label) in zip(axes, panels):
        scale_to = 1 if metric == "pairs_per_s" else 1e-3  # µs -> ms
        p = sorted(one_node.get(metric, []))
        if p:
            ax.plot([x for x, _, _ in p], [y * scale_to for _, y, _ in p], marker="o",
                    label=f"one node, {p[0][2]} client VPEs")
        for kernels, y, n, vpes in nodes.get(metric, []):
            ax.plot([kernels], [y * scale_to], marker="s", linestyle="none",
                    label=f"{n} nodes (netns, UDP), {vpes} client VPEs")
        ax.set_xscale("log", base=2)
        if metric == "tree_revoke":
            ax.set_yscale("log")
        ax.set_xlabel("kernels (log scale)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("vdtu bench scale: capability operations and revocation against kernels")
    fig.tight_layout()
    path = out / "scale_curve.png"
    fig.savefig(path, **SAVE)
    plt.close(fig)
    return [path]


def measure(build, data, suites, quick):
    vdtu = pathlib.Path(build).resolve() / "vdtu"
    if not vdtu.is_file():
        sys.exit(f"{vdtu}: no such program (build first)")
    data.mkdir(parents=True, exist_ok=True)
    failed = []
    for suite in suites:
        words = [str(vdtu), "bench", suite, "--json", "--quantiles"] + (["--quick"] if quick else [])
        print(f"plot.py: {' '.join(words[1:])}", flush=True)
        done = subprocess.run(words, capture_output=True, text=True)
        if done.returncode != 0:  # keep the data of the last good run of this suite
            print(f"plot.py: vdtu bench {suite} failed ({done.returncode}), its old data stays:\n{done.stderr}")
            failed.append(suite)
            continue
        (data / f"{suite}.jsonl").write_text(done.stdout)
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", metavar="BUILD_DIR", help="measure first with BUILD_DIR/vdtu (saved to data/)")
    parser.add_argument("--suites", default=",".join(SUITES), help=f"with --run: which (default {','.join(SUITES)})")
    parser.add_argument("--quick", action="store_true", help="with --run: few iterations (rough figures)")
    parser.add_argument("--out", default=str(FIGURES), help="where the figures go (default docs/figures)")
    parser.add_argument("inputs", nargs="*", help="JSON-lines files (default: OUT/data/*.jsonl)")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    data = out / "data"
    failed = measure(args.run, data, args.suites.split(","), args.quick) if args.run else []
    inputs = args.inputs or sorted(str(p) for p in data.glob("*.jsonl"))
    if not inputs:
        sys.exit(f"no input: give files, or --run BUILD_DIR to measure into {data}")
    results = read_results(inputs)
    if not results:
        sys.exit("no benchmark results in " + ", ".join(inputs))
    out.mkdir(parents=True, exist_ok=True)
    written = cdfs(results, out) + chain_revoke(results, out) + scale(results, out) + scale_curve(results, out)
    for path in written:
        print(f"plot.py: wrote {path}")
    if not written:
        sys.exit("nothing to draw: no quantiles, chain revocations or series in the input")
    if failed:
        sys.exit(f"plot.py: measuring failed for {', '.join(failed)} (figures drawn from their old data)")


if __name__ == "__main__":
    main()
