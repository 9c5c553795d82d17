#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/adamw_torch.py: PyTorch's CPU AdamW on the sizes bench_adamw uses.

    python3 bench/adamw_torch.py [--sizes 1M,16M,64M] [--reps K] [--threads T]
                                 [--zrt FILE]

For each size n (f32 elements; K, M, G suffixes are powers of 2), one
parameter tensor of n elements with a gradient, torch.optim.AdamW (lr 1e-3,
betas (0.9, 0.999), eps 1e-8, weight_decay 0.01, as bench_adamw) with
foreach=True and with fused=True, each at torch.set_num_threads(1) and at T
threads (default: os.cpu_count(), bench_adamw's default pool). Timing follows
bench_adamw: one warm-up step, then the best of at least K steps and at least
0.25 s of them; the median is printed beside it. GB/s counts the fused
kernel's minimum traffic, 28 bytes per element, as bench_adamw does.

--zrt FILE reads the table bench_adamw printed (same sizes and threads) and
adds a side-by-side table: zrt's fused AdamW against both torch variants.
A variant that raises (fused=True on a torch without a CPU fused AdamW) is
reported as "not available". Without an importable torch the script says so
and exits 0.
"""
import argparse
import os
import statistics
import sys
import time

ADAMW_BYTES = 28
MIN_TIME = 0.25


def parse_size(text):
    shift = {"K": 10, "M": 20, "G": 30}.get(text[-1:], 0)
    value = int(text[:-1] if shift else text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return value << shift


def parse_sizes(text):
    return [parse_size(s) for s in text.split(",")]


def time_steps(opt, reps):
    """Seconds per step: (reps done, best, median) after one warm-up."""
    opt.step()
    times = []
    while len(times) < reps or sum(times) < MIN_TIME:
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    return len(times), min(times), statistics.median(times)


def bench_one(torch, n, threads, variant, reps):
    """One (size, threads, variant): a dict of results, or None if the
    variant is not available on this torch."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(1.0 + 0.1 * (torch.rand(n, generator=gen) * 2 - 1))
    p.grad = 0.01 * (torch.rand(n, generator=gen) * 2 - 1)
    kw = {"foreach": True} if variant == "foreach" else {"fused": True}
    try:
        opt = torch.optim.AdamW([p], lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=0.01, **kw)
        done, best, median = time_steps(opt, reps)
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as e:
        return {"error": str(e).splitlines()[0][:80]}
    float(p.detach().sum())  # use the result
    return {"reps": done, "best": best, "median": median,
            "mps": n / best / 1e6, "gbps": ADAMW_BYTES * n / best / 1e9}


def read_zrt(path):
    """{(elements, threads): Mparam/s} of bench_adamw's fused rows."""
    out = {}
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 8 and cells[2].startswith("fused"):
                out[(int(cells[0]), int(cells[1]))] = float(cells[6])
    return out


def fmt(r, key, spec):
    return format(r[key], spec) if "error" not in r else "not available"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1M,16M,64M"))
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--zrt", help="bench_adamw's output, for a side-by-side table")
    args = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print(f"adamw_torch.py: torch is not importable ({e}); nothing measured")
        return 0

    thread_counts = sorted({1, args.threads})
    print(f"adamw_torch.py: torch {torch.__version__}, nproc {os.cpu_count()}, "
          f"best of >= {args.reps} steps (and >= {MIN_TIME} s) after 1 warm-up; "
          f"GB/s counts {ADAMW_BYTES} B/element\n")
    print("| elements | threads | torch AdamW | reps | best ms | median ms | "
          "Mparam/s | GB/s |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    results = {}
    for n in args.sizes:
        for t in thread_counts:
            for variant in ("foreach", "fused"):
                r = bench_one(torch, n, t, variant, args.reps)
                results[(n, t, variant)] = r
                if "error" in r:
                    print(f"| {n} | {t} | {variant}=True | - | - | - | not available "
                          f"({r['error']}) | - |")
                else:
                    print(f"| {n} | {t} | {variant}=True | {r['reps']} | "
                          f"{r['best'] * 1e3:.3f} | {r['median'] * 1e3:.3f} | "
                          f"{r['mps']:.0f} | {r['gbps']:.2f} |")
                sys.stdout.flush()

    if not args.zrt:
        return 0
    zrt = read_zrt(args.zrt)
    print("\nSide by side, Mparam/s (higher is better); ratios are zrt / torch:\n")
    print("| elements | threads | zrt fused | torch fused | torch foreach | "
          "zrt / torch fused | zrt / torch foreach |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        for t in thread_counts:
            z = zrt.get((n, t))
            fu, fe = results[(n, t, "fused")], results[(n, t, "foreach")]
            zs = f"{z:.0f}" if z else "not measured"

            def ratio(r):
                return f"{z / r['mps']:.2f}" if z and "error" not in r else "-"
            print(f"| {n} | {t} | {zs} | {fmt(fu, 'mps', '.0f')} | "
                  f"{fmt(fe, 'mps', '.0f')} | {ratio(fu)} | {ratio(fe)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
