#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Tables and CSVs for bench/bench_pipeline.sh.

usage: python3 bench/pipeline_summary.py activations|bubble|largest RESULTS_DIR

Reads each run's log and per-rank memory reports (RESULTS_DIR/<run>/r<k>.json)
and prints a markdown table; writes RESULTS_DIR/<part>.csv.
"""
import csv
import glob
import json
import os
import re
import sys

MIB = 1024.0 * 1024.0


def reports(d):
    out = []
    for f in sorted(glob.glob(os.path.join(d, "r*.json"))):
        with open(f) as fh:
            out.append(json.load(fh))
    out.sort(key=lambda r: r["rank"])
    return out


def act(r, side):
    """activation peak bytes: side 'plan' or 'tiers' (measured)."""
    return r[side]["device"]["categories"]["activation"]["peak"]


def dev(r, side):
    return r[side]["device"]["peak"]


def read(d, name):
    p = os.path.join(d, name)
    return open(p).read() if os.path.exists(p) else ""


def run_rc(d):
    s = read(d, "rc").strip()
    return int(s) if s else None


def fmt(x, nd=1):
    return "—" if x is None else f"{x:.{nd}f}"


def activations(out):
    rows = []
    csvrows = []
    for model in ("d6", "d12"):
        for cfg, label in (("dp1", "1 rank, data-parallel"),
                           ("gpipe4", "4 ranks, --pp 4 gpipe"),
                           ("1f1b4", "4 ranks, --pp 4 1f1b")):
            res = {}
            for rc in (0, 1):
                d = os.path.join(out, f"act-{model}-{cfg}-rc{rc}")
                rr = reports(d) if os.path.isdir(d) else []
                if not rr or run_rc(d) != 0:
                    res[rc] = None
                    continue
                for r in rr:
                    csvrows.append([model, cfg, rc, r["rank"], r.get("pipeline_stage", 0),
                                    act(r, "plan"), act(r, "tiers"), dev(r, "plan"),
                                    dev(r, "tiers")])
                res[rc] = (max(act(r, "plan") for r in rr), max(act(r, "tiers") for r in rr),
                           [act(r, "tiers") for r in rr], read(d, "wall_s").strip())
            rows.append((model, label, res))
    print("| model | configuration | activations MiB, plan / measured (largest rank) | "
          "with --recompute, plan / measured | with / without | per stage (measured, "
          "without → with) |")
    print("|---|---|---:|---:|---:|---|")
    for model, label, res in rows:
        a, b = res.get(0), res.get(1)
        sa = f"{fmt(a[0] / MIB)} / {fmt(a[1] / MIB)}" if a else "failed"
        sb = f"{fmt(b[0] / MIB)} / {fmt(b[1] / MIB)}" if b else "failed"
        ratio = f"{b[1] / a[1]:.3f}" if a and b else "—"
        per = ""
        if a and b and len(a[2]) > 1:
            per = ", ".join(f"{x / MIB:.1f} → {y / MIB:.1f}" for x, y in zip(a[2], b[2]))
        print(f"| {model} | {label} | {sa} | {sb} | {ratio} | {per} |")
    print("| GPipe paper (AmoebaNet, 1 accelerator) | | 6.26 GB | 3.46 GB | 0.553 | |")
    exact = all(r[5] == r[6] for r in csvrows)
    print(f"\nactivation plan == measured to the byte on every rank of every run: {exact}")
    with open(os.path.join(out, "activations.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "config", "recompute", "rank", "pipeline_stage",
                    "activation_plan_bytes", "activation_measured_bytes",
                    "device_plan_bytes", "device_measured_bytes"])
        w.writerows(csvrows)


PIPE_RE = re.compile(r"pipeline: (\S+), (\d+) stages x (\d+) data-parallel, (\d+) micro-batches; "
                     r"idle fraction per stage ([0-9. ]+) \(bubble \(P-1\)/\(M\+P-1\) = ([0-9.]+)\)")
TIME_RE = re.compile(r"timing: ([0-9.]+) ms/step")


def bubble(out):
    rows = []
    for d in sorted(glob.glob(os.path.join(out, "bub-p*"))):
        m = re.match(r"bub-p(\d+)-m(\d+)-(\w+)$", os.path.basename(d))
        if not m:
            continue
        P, M, sched = int(m.group(1)), int(m.group(2)), m.group(3)
        log = read(d, "log")
        pm = PIPE_RE.search(log)
        tm = TIME_RE.search(log)
        rr = reports(d)
        st0 = [r for r in rr if r.get("pipeline_stage", 0) == 0]
        a0 = max(act(r, "tiers") for r in st0) if st0 else None
        a0p = max(act(r, "plan") for r in st0) if st0 else None
        idle = [float(x) for x in pm.group(5).split()] if pm else None
        rows.append(dict(P=P, M=M, sched=sched, idle=idle,
                         theory=float(pm.group(6)) if pm else (P - 1) / (M + P - 1),
                         ms=float(tm.group(1)) if tm else None, act0=a0, act0_plan=a0p,
                         rc=run_rc(d), wall=read(d, "wall_s").strip()))
    rows.sort(key=lambda r: (r["P"], r["M"], r["sched"] != "gpipe"))
    print("| P (ranks) | M | schedule | idle fraction per stage | mean idle | (P-1)/(M+P-1) | "
          "ms/step | stage 0 activation peak MiB | 1f1b / gpipe (stage 0) | min(P,M)/M |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|")
    by = {(r["P"], r["M"], r["sched"]): r for r in rows}
    for r in rows:
        idle = " ".join(f"{x:.3f}" for x in r["idle"]) if r["idle"] else f"failed (rc {r['rc']})"
        mean = sum(r["idle"]) / len(r["idle"]) if r["idle"] else None
        ratio = th = ""
        if r["sched"] == "1f1b":
            g = by.get((r["P"], r["M"], "gpipe"))
            if g and g["act0"] and r["act0"]:
                ratio = f"{r['act0'] / g['act0']:.3f}"
            th = f"{min(r['P'], r['M']) / r['M']:.3f}"
        print(f"| {r['P']} | {r['M']} | {r['sched']} | {idle} | {fmt(mean, 3)} | "
              f"{r['theory']:.3f} | {fmt(r['ms'])} | "
              f"{fmt(r['act0'] / MIB if r['act0'] is not None else None)} | {ratio} | {th} |")
    with open(os.path.join(out, "bubble.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["P", "M", "schedule", "idle_per_stage", "idle_mean", "bubble_theory",
                    "ms_per_step", "stage0_activation_measured_bytes",
                    "stage0_activation_plan_bytes", "rc", "wall_s"])
        for r in rows:
            w.writerow([r["P"], r["M"], r["sched"],
                        " ".join(map(str, r["idle"])) if r["idle"] else "",
                        sum(r["idle"]) / len(r["idle"]) if r["idle"] else "",
                        r["theory"], r["ms"], r["act0"], r["act0_plan"], r["rc"], r["wall"]])


CFG = {
    "a": "DP ZeRO-3, 4 ranks",
    "b": "DP ZeRO-3 + recompute, 4 ranks",
    "c": "--pp 2 (2 x 2), stage 2 + recompute, 1f1b",
    "d": "--pp 4 (4 x 1), stage 1 + recompute, 1f1b",
    "e": "--pp 2 (2 x 2), stage 3 + recompute, 1f1b",
}
for _k in list(CFG):
    CFG[_k + "1"] = CFG[_k] + ", one-block buckets"
PLAN_RE = re.compile(r"plan: rank (\d+) device peak ([0-9.]+) MiB, activations ([0-9.]+) MiB")


def params(L, C=1024, V=256, T=1024):
    return V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C


def largest(out):
    print("| configuration | largest L | parameters (M) | planned device peak MiB per rank "
          "(largest) | planned activations MiB (largest rank) | next L (does not fit): "
          "planned peak MiB |")
    print("|---|---:|---:|---:|---:|---|")
    res = {}
    with open(os.path.join(out, "largest.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["config", "description", "L", "params", "plan_device_peak_mib_max",
                    "plan_activation_mib_max"])
        for c, desc in CFG.items():
            d = os.path.join(out, f"largest-{c}")
            if not os.path.isdir(d):
                continue
            L = int(read(d, "L").strip() or 0)
            peaks = PLAN_RE.findall(read(d, "plan-best.log"))
            pk = max(float(p[1]) for p in peaks) if peaks else None
            ak = max(float(p[2]) for p in peaks) if peaks else None
            nxt = PLAN_RE.findall(read(d, f"plan-L{L + 1}.log"))
            nx = f"L={L + 1}: {max(float(p[1]) for p in nxt):.1f}" if nxt else ""
            res[c] = L
            print(f"| ({c}) {desc} | {L} | {params(L) / 1e6:.1f} | {fmt(pk)} | {fmt(ak)} | {nx} |")
            w.writerow([c, desc, L, params(L), pk, ak])
    runs = sorted(glob.glob(os.path.join(out, "largest-run-*")))
    if runs:
        print()
        print("| run | L | parameters (M) | rc | measured device peak MiB per rank (plan) | "
              "budget MiB | peak RSS line (rank 0) | ms/step (steps) | wall s |")
        print("|---|---:|---:|---:|---|---:|---|---|---:|")
    for d in runs:
        m = re.match(r"largest-run-(\w+?)-L(\d+)$", os.path.basename(d))
        if not m:
            continue
        c, L = m.group(1), int(m.group(2))
        log = read(d, "log")
        rr = reports(d)
        per = ", ".join(f"{dev(r, 'tiers') / MIB:.1f} ({dev(r, 'plan') / MIB:.1f})" for r in rr)
        rss = re.search(r"memory: peak RSS .*", log)
        steps = re.findall(r"step\s+\d+/\d+ \|.*?\|\s+([0-9.]+) ms", log)
        rc = run_rc(d)
        rc = rc if rc is not None else (read(d, "note").strip() or "unfinished")
        print(f"| ({c}) | {L} | {params(L) / 1e6:.1f} | {rc} | {per or '—'} | 5120 | "
              f"{rss.group(0) if rss else '—'} | {', '.join(steps) or '—'} | "
              f"{read(d, 'wall_s').strip()} |")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("activations", "bubble", "largest"):
        sys.exit(__doc__)
    {"activations": activations, "bubble": bubble, "largest": largest}[sys.argv[1]](sys.argv[2])
