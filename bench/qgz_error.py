#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/qgz_error.py — what qgZ's quantization costs in error: the average of N
ranks' gradients reduced as zrt's quantized reductions reduce them, flat (every
rank's block quantized once, summed in rank order) and hierarchical (each
group's partial quantized again before it crosses groups, ZeRO++'s one
quantization per hop), against the exact f32 average.

The format is docs/compression.md's (blockwise symmetric absmax, Q = 127 or 7,
scale = a / Q, q = rint(x * (Q / a)), x' = q * scale), computed in numpy f32;
tests/mpi/test_comm_hier.c checks, bit for bit, that the communicator computes
exactly these sums. The inputs are gradient-like: each rank's values are
Gaussian with a per-256-element magnitude drawn log-normally (some blocks 10x
the others), and the ranks' gradients are correlated (a shared signal plus
each rank's noise), as data-parallel gradients are.

    python3 bench/qgz_error.py [--n 1048576] [--seed 1]

Prints, per (bits, N, R): the relative RMS error ||avg' - avg|| / ||avg|| for
flat and hierarchical, and their ratio.
"""
import argparse

import numpy as np


def quantize_dequantize(x, block, bits):
    q_max = np.float32(127 if bits == 8 else 7)
    blocks = x.reshape(-1, block)
    a = np.abs(blocks).max(axis=1, keepdims=True)
    safe = np.where(a > 0, a, np.float32(1))
    scale = (safe / q_max).astype(np.float32)
    inv = (q_max / safe).astype(np.float32)
    q = np.clip(np.rint(blocks * inv), -q_max, q_max)
    return np.where(a > 0, q * scale, np.float32(0)).astype(np.float32).reshape(-1)


def gradients(rng, n_ranks, n):
    magnitude = np.repeat(rng.lognormal(0.0, 1.0, n // 256), 256).astype(np.float32)
    shared = rng.standard_normal(n).astype(np.float32) * magnitude
    return [(shared + rng.standard_normal(n).astype(np.float32) * magnitude)
            .astype(np.float32) for _ in range(n_ranks)]


def flat(grads, block, bits):
    acc = np.zeros_like(grads[0])
    for g in grads:
        acc += quantize_dequantize(g, block, bits)
    return acc / np.float32(len(grads))


def hierarchical(grads, block, bits, group):
    acc = np.zeros_like(grads[0])
    for start in range(0, len(grads), group):
        partial = np.zeros_like(grads[0])
        for g in grads[start:start + group]:
            partial += quantize_dequantize(g, block, bits)
        acc += quantize_dequantize(partial, block, bits)
    return acc / np.float32(len(grads))


def relative_error(approx, exact):
    return float(np.linalg.norm((approx - exact).astype(np.float64)) /
                 np.linalg.norm(exact.astype(np.float64)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--block", type=int, default=256)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"elements {args.n}, block {args.block}, seed {args.seed}")
    print("%-5s %-3s %-3s %12s %12s %8s" % ("bits", "N", "R", "flat", "hier", "hier/flat"))
    for bits in (8, 4):
        for n_ranks, group in ((4, 2), (8, 2), (8, 4), (16, 8)):
            grads = gradients(rng, n_ranks, args.n)
            exact = np.sum(np.stack(grads).astype(np.float64), axis=0) / n_ranks
            e_flat = relative_error(flat(grads, args.block, bits), exact)
            e_hier = relative_error(hierarchical(grads, args.block, bits, group), exact)
            print("%-5d %-3d %-3d %12.3e %12.3e %8.2f" % (
                bits, n_ranks, group, e_flat, e_hier, e_hier / e_flat))


if __name__ == "__main__":
    main()
