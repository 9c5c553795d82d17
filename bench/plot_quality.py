#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Draws bench/bench_quality.sh's loss curves as SVG.

    python3 bench/plot_quality.py OUTDIR/quality.csv docs/images/compression-loss.png [--window 25]

Top: per option (one colour each), the training loss as a centred moving
average of --window steps (a line) and the validation loss (markers), from a
tenth of the steps on. Bottom (when plain ran): each option's losses less
plain's at the same step, validation (markers) and training (moving average:
every run trains on the same batches).
"""
import argparse
import csv
from collections import defaultdict

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    """option -> {"train": {step: loss}, "val": {step: loss}}, in file order."""
    runs = defaultdict(lambda: {"train": {}, "val": {}})
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key in ("train", "val"):
                if row[key + "_loss"]:
                    runs[row["option"]][key][int(row["step"])] = float(row[key + "_loss"])
    return runs


def moving_average(points, window):
    """(steps, means): at each step the mean of the points centred on it, `window`
    of them or, near the ends, as many as fit on both sides."""
    steps = sorted(points)
    values = [points[s] for s in steps]
    n, means = len(values), []
    for i in range(n):
        h = min(window // 2, i, n - 1 - i)
        means.append(sum(values[i - h:i + h + 1]) / (2 * h + 1))
    return steps, means


def draw_curves(ax, runs, window):
    """Training loss (moving average) and validation loss (markers) per option."""
    for i, (name, run) in enumerate(runs.items()):
        if run["train"]:
            ax.plot(*moving_average(run["train"], window), color="C%d" % i, lw=1.3,
                    label="%s train (mean of %d)" % (name, window))
        steps = sorted(run["val"])
        ax.plot(steps, [run["val"][s] for s in steps], "o", color="C%d" % i, ms=4,
                mfc="none", label="%s val" % name)
    # from a tenth of the steps on: above it the loss falls from ln 256
    start = max((s for run in runs.values() for s in run["train"]), default=0) / 10
    shown = [v for run in runs.values() for s, v in run["val"].items() if s >= start]
    for run in runs.values():
        shown += [v for s, v in zip(*moving_average(run["train"], window)) if s >= start]
    if shown:
        ax.set_ylim(min(shown) - 0.05, max(shown) + 0.1)
    ax.set_ylabel("loss (nats per byte)")
    ax.set_title("GPT-2 on the KJV corpus: each compression option against plain")
    ax.legend(fontsize=8, ncol=2)


def draw_differences(ax, runs, window):
    """Each option's losses less plain's, at the steps both measured."""
    plain = runs["plain"]
    for i, (name, run) in enumerate(runs.items()):
        if name == "plain":
            continue
        steps = sorted(set(run["val"]) & set(plain["val"]))
        ax.plot(steps, [run["val"][s] - plain["val"][s] for s in steps], "o",
                color="C%d" % i, ms=4, mfc="none", label="%s val" % name)
        diff = {s: run["train"][s] - plain["train"][s]
                for s in set(run["train"]) & set(plain["train"])}
        if diff:
            ax.plot(*moving_average(diff, window), color="C%d" % i, lw=1,
                    label="%s train" % name)
    ax.axhline(0, color="0.5", lw=1)
    ax.set_ylabel("loss - plain's")
    if len(runs) > 1:
        ax.legend(fontsize=8, ncol=3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("svg")
    ap.add_argument("--window", type=int, default=25, help="moving-average steps (default 25)")
    args = ap.parse_args()
    runs = read(args.csv)
    plt.rcParams["svg.hashsalt"] = "zrt-bench-quality"  # the same file for the same data
    if "plain" in runs:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1.4]})
        draw_differences(bottom, runs, args.window)
    else:
        fig, top = plt.subplots(figsize=(9, 5.5))
        bottom = top
    draw_curves(top, runs, args.window)
    for ax in {top, bottom}:
        ax.grid(alpha=0.3)
    bottom.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(args.svg, metadata={"Date": None})


if __name__ == "__main__":
    main()
