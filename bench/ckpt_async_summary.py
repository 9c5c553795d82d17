#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The table of bench/bench_ckpt_async.sh.

usage: python3 bench/ckpt_async_summary.py RESULTS_DIR [WARM]

Each run directory (none-rR, sync-kK-rR, async-kK-rR) holds `log`: train_gpt2's
rank-0 output and zrt's log lines, each prefixed with its arrival time in
seconds. Per run:

  iteration s   (t(step N line) - t(step WARM line)) / (N - WARM): the mean time
                of a loop iteration of steps WARM+1..N, saves included (the
                window holds (N - WARM) / K saves: those after steps WARM..N-1)
  compute ms    the example's per-step time (zero_grad .. zrt_step, rank 0),
                mean over steps WARM+1..N: what its "timing:" line averages,
                which excludes the save
  in-loop save  s per save that zrt_save held the training loop: the mean over
                the save iterations of (interval - the next step's compute)
                minus the same over the other iterations
  logged save   zrt's "zrt_save: wrote ... in X s": from zrt_save's start to
                the checkpoint's publication (async: at a later zrt_step)
  lag           async: steps from the save to the step whose zrt_step
                published it (1: the next step's)
  peak RSS      rank 0's, from the example's "memory:" line (async holds a
                host buffer of the rank's whole file)
  busy ms       async: the compute ms of the steps between a save and its
                publication (the writer thread running), beside the others

Prints a markdown table (mean over repeats; ratio = mode / none) and writes
RESULTS_DIR/runs.csv.
"""
import csv
import os
import re
import sys

RSS = re.compile(r"^\S+ memory: peak RSS ([\d.]+) MiB")
TIMING = re.compile(r"^\S+ timing: ([\d.]+) ms/step")
STEP = re.compile(r"^(\S+) step\s+(\d+)/(\d+) \|.*\|\s+([\d.]+) ms \|")
SAVE = re.compile(r"^(\S+) \[zrt[^\]]*\] zrt_save[^:]*: wrote \S*step-0*(\d+) .*?\((\d+) bytes\)\)"
                  r".* in ([\d.]+) s")


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def read(d, name, default=""):
    p = os.path.join(d, name)
    return open(p).read().strip() if os.path.exists(p) else default


def parse(d, warm):
    name = os.path.basename(d)
    m = re.match(r"(none|sync|async)(?:-k(\d+))?-r(\d+)$", name)
    mode, k, rep = m.group(1), int(m.group(2) or 0), int(m.group(3))
    t, ms, saves, extra = {}, {}, [], {}
    last_step = 0
    for line in open(os.path.join(d, "log"), errors="replace"):
        s = STEP.match(line)
        if s:
            i = int(s.group(2))
            t[i], ms[i] = float(s.group(1)), float(s.group(4))
            n = int(s.group(3))
            last_step = i
            continue
        s = RSS.match(line) or TIMING.match(line)
        if s:
            extra["rss_mib" if s.re is RSS else "timing_ms"] = float(s.group(1))
            continue
        s = SAVE.match(line)
        if s:  # (saved step, bytes, seconds, published after step line)
            saves.append((int(s.group(2)), int(s.group(3)), float(s.group(4)), last_step))
    r = {"run": name, "mode": mode, "K": k, "repeat": rep, "rc": read(d, "rc", "?"),
         "same_as_none": read(d, "same_as_none", "-"), "load": read(d, "load"),
         "wall_s": read(d, "wall_s"), **extra}
    if not t or max(t) < warm + 1 or warm not in t:
        return r
    n = max(t)
    steps = range(warm + 1, n + 1)
    r["iteration_s"] = (t[n] - t[warm]) / (n - warm)
    r["compute_ms"] = mean([ms[i] for i in steps])
    # iteration i -> i+1: after step i's line (the save of step i), step i+1
    outside = {i: t[i + 1] - t[i] - ms[i + 1] / 1e3 for i in range(warm, n)}
    saved = [i for i in outside if k and i % k == 0]
    plain = [i for i in outside if i not in saved]
    r["saves_in_window"] = len(saved)
    if saved:
        r["in_loop_save_s"] = mean([outside[i] for i in saved]) - mean([outside[i] for i in plain])
    r["outside_plain_ms"] = 1e3 * mean([outside[i] for i in plain])
    if saves:
        r["logged_save_s"] = mean([s[2] for s in saves])
        r["ckpt_mib"] = saves[0][1] / 2**20
        r["saves_logged"] = len(saves)
        # async: a publication logged after step j's line happened in step
        # j+1's zrt_step (the last save's, after step n, in zrt_save_wait)
        inner = [s for s in saves if s[0] < n]
        if mode == "async" and inner:
            r["lag_steps"] = mean([s[3] + 1 - s[0] for s in inner])
            busy = set()
            for s in inner:
                busy.update(range(s[0] + 1, s[3] + 2))
            b = [ms[i] for i in steps if i in busy]
            o = [ms[i] for i in steps if i not in busy]
            r["busy_ms"], r["idle_ms"] = mean(b), mean(o)
    return r


def fmt(x, spec):
    return format(x, spec) if isinstance(x, float) and x == x else "-"


def main():
    out = sys.argv[1]
    warm = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    runs = []
    for name in sorted(os.listdir(out)):
        d = os.path.join(out, name)
        if os.path.isfile(os.path.join(d, "log")) and re.match(r"(none|sync|async)", name):
            runs.append(parse(d, warm))
    keys = ["run", "mode", "K", "repeat", "rc", "iteration_s", "compute_ms", "saves_in_window",
            "in_loop_save_s", "outside_plain_ms", "logged_save_s", "saves_logged", "ckpt_mib",
            "lag_steps", "busy_ms", "idle_ms", "timing_ms", "rss_mib", "same_as_none", "wall_s", "load"]
    with open(os.path.join(out, "runs.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in runs:
            w.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})
    groups = {}
    for r in runs:
        groups.setdefault((r["mode"], r["K"]), []).append(r)
    order = sorted(groups, key=lambda g: (g[1], ["none", "sync", "async"].index(g[0])))
    none = [r["iteration_s"] for r in groups.get(("none", 0), []) if "iteration_s" in r]
    base = mean(none)
    none_by_rep = {r["repeat"]: r.get("iteration_s") for r in groups.get(("none", 0), [])}
    print("| mode | K | s per iteration, each run | mean s | ratio to none | overhead % "
          "| ratio to the same repeat's none | compute ms/step (example's timed part) "
          "| zrt_save in the loop, s per save | logged save s (zrt, to publication) "
          "| async: steps to publication | async: compute ms, writer busy / idle "
          "| peak RSS MiB | final model = none's |")
    print("|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---|")
    for g in order:
        rs = sorted(groups[g], key=lambda r: r["repeat"])
        its = [r.get("iteration_s", float("nan")) for r in rs]
        m = mean([x for x in its if x == x])
        ratio = m / base if base == base and base > 0 else float("nan")
        per_rep = []
        for r in rs:
            b = none_by_rep.get(r["repeat"])
            per_rep.append(fmt(r["iteration_s"] / b, ".3f") if b and "iteration_s" in r else "-")
        busy = "-"
        if g[0] == "async":
            busy = "%s / %s" % (fmt(mean([r.get("busy_ms", float("nan")) for r in rs]), ".0f"),
                                fmt(mean([r.get("idle_ms", float("nan")) for r in rs]), ".0f"))
        def avg(key):
            return mean([r[key] for r in rs if key in r]) if any(key in r for r in rs) \
                else float("nan")
        same = ", ".join(r["same_as_none"] for r in rs)
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            g[0], g[1] or "-", " ".join(fmt(x, ".3f") for x in its), fmt(m, ".3f"),
            fmt(ratio, ".3f"), fmt(100 * (ratio - 1), "+.1f"), " ".join(per_rep),
            fmt(avg("compute_ms"), ".0f"), fmt(avg("in_loop_save_s"), ".3f"),
            fmt(avg("logged_save_s"), ".3f"), fmt(avg("lag_steps"), ".1f"), busy, fmt(avg("rss_mib"), ".0f"), same))
    bad = [r["run"] for r in runs if r["rc"] != "0"]
    if bad:
        print("\nfailed runs: " + ", ".join(bad))
    ck = [r["ckpt_mib"] for r in runs if "ckpt_mib" in r]
    if ck:
        print("\ncheckpoint: %.2f MiB (all ranks' files)" % ck[0])


if __name__ == "__main__":
    main()
