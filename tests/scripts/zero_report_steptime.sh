#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# zero-report's step-time model (tools/zero-report/steptime.c): with a
# cluster (--hosts H --ranks-per-host R --inter-bw --intra-bw --compute-rate
# --tokens-per-step), --estimate prints per stage and routing the bytes of a
# host's link per step — flat R(H-1)/H, hierarchical (H-1)/H of 2 psi b
# (stages 0-2) or 3 psi b (stage 3, plus a GPT-2 preset's tied embedding) —
# and a rank's bytes within its host, equal here to formulas computed
# independently and, for GPT-2 d4 on 2 x 2, to the link bytes bench_cluster.sh
# measured; the times follow the documented rules (comm: flat max, hierarchical
# sum; compute: tokens x (6 psi + 12 L T C) / rate; step: the overlap rule,
# and compute + comm with overlap_comm off or --comm-progress polled); --fit
# ranks the rungs that fit
# by predicted step time, ascending; bad cluster flags exit 2 naming the flag
# and the value.
#   zero_report_steptime.sh ZERO_REPORT
source "$(dirname "$0")/common.sh"
ZR=$1

# ---- two shapes, every stage and routing, against the formulas ----------------
# GPT-2 d4 as train_gpt2 trains it (the bench's config: no prefetch, no
# persistence), on 2 hosts x 2 ranks and 2 hosts x 4 ranks, links at 1 Gbit/s.
cat >"$WORK/bench.json" <<'EOF'
{"zero_optimization": {"stage3_prefetch_bucket_size": 0, "stage3_param_persistence_threshold": 0}}
EOF
cat >"$WORK/nooverlap.json" <<'EOF'
{"zero_optimization": {"overlap_comm": false}}
EOF
run_est() { # OUT ARGS...
    local out=$1; shift
    "$ZR" --estimate "$@" >"$WORK/$out" 2>&1 || { cat "$WORK/$out"; fail "zero-report --estimate $*"; }
}
run_est d4x22 --preset train-gpt2-d4 --hosts 2 --ranks-per-host 2 --inter-bw 1gbit \
    --intra-bw 2GB/s --compute-rate 17.8e9 --tokens-per-step 256 --seq-len 64 \
    --config "$WORK/bench.json" --stage all
cat "$WORK/d4x22"
run_est d4x24 --preset train-gpt2-d4 --hosts 2 --ranks-per-host 4 --inter-bw 1000Mbit/s \
    --intra-bw 2e9 --compute-rate 8.9GFLOPS --tokens-per-step 256 --seq-len 64 \
    --config "$WORK/bench.json" --stage all
# 1e9 parameters in bf16 on 4 hosts x 8 ranks, default config (prefetch on)
run_est p1bx48 --params 1e9 --precision bf16 --hosts 4 --ranks-per-host 8 \
    --inter-bw 100GB/s --intra-bw 25GiB/s --compute-rate 100T --tokens-per-step 4096 --stage all
run_est p1bx48off --params 1e9 --precision bf16 --hosts 4 --ranks-per-host 8 \
    --inter-bw 100GB/s --intra-bw 25GiB/s --compute-rate 100T --tokens-per-step 4096 \
    --config "$WORK/nooverlap.json" --stage 2
# polled progress (the mpi communicator on CPU): compute + comm, whatever
# overlap_comm says
run_est p1bx48polled --params 1e9 --precision bf16 --hosts 4 --ranks-per-host 8 \
    --inter-bw 100GB/s --intra-bw 25GiB/s --compute-rate 100T --tokens-per-step 4096 \
    --comm-progress polled --stage all

python3 - "$WORK" <<'EOF' || fail "the step-time table does not follow the formulas"
import re, sys
work = sys.argv[1]

def rows(name):
    out = {}
    for line in open(f"{work}/{name}"):
        c = line.split()
        if len(c) == 10 and c[0] in "0123" and c[1] in ("flat", "hierarchical"):
            out[(int(c[0]), c[1])] = [int(c[2]), int(c[3])] + [float(x) for x in c[4:]]
    return out

def check(name, psi, b, H, R, inter, intra, rate, tokens, fpt, first_layer, tied, prefetch, overlap, stages):
    got = rows(name)
    N = H * R
    assert sorted(got) == sorted((s, r) for s in stages for r in ("flat", "hierarchical")), (name, sorted(got))
    for (s, routing), (link, own, t_inter, t_intra, t_comm, t_comp, t_step, t_exp) in got.items():
        hier = routing == "hierarchical"
        v = (3 if s == 3 else 2) * psi * b + (first_layer * b if s == 3 and tied else 0)
        want_link = v * (H - 1) // H if hier else v * R * (H - 1) // H
        want_own = v * (N - H) // N if hier else v * (R - 1) // N
        assert link == want_link, (name, s, routing, link, want_link)
        assert own == want_own, (name, s, routing, own, want_own)
        close = lambda a, e: abs(a - e) <= 5e-5 + 1e-4 * abs(e)
        assert close(t_inter, want_link / inter) and close(t_intra, want_own / intra), (name, s, routing, t_inter, want_link / inter, t_intra, want_own / intra)
        comm = lambda vol: (vol * (H - 1) / H / inter + vol * (N - H) / N / intra) if hier else \
            max(vol * R * (H - 1) / H / inter, vol * (R - 1) / N / intra)
        assert close(t_comm, comm(v)), (name, s, routing, t_comm, comm(v))
        comp = tokens * fpt / rate
        assert close(t_comp, comp), (name, s, t_comp, comp)
        if not overlap:
            step = comp + comm(v)
        else:  # the documented overlap rule
            F, B = comp / 3, 2 * comp / 3
            p, first = comm(psi * b), comm(first_layer * b)
            head = tail = first
            exposed = 0
            if s == 0:
                fwd, bwd, head, tail = 0, 2 * p, 0, 2 * first
            elif s < 3:
                fwd, bwd = p, p
            else:
                fwd, bwd = p + (first if tied else 0), 2 * p
                if not prefetch:
                    exposed, fwd, bwd, head = fwd + p, 0, p, 0
            step = exposed + head + max(F, fwd - head) + max(B, bwd - tail) + tail
        assert close(t_step, step), (name, s, routing, t_step, step)
        assert abs(t_exp - (t_step - t_comp)) <= 1.5e-4, (name, s, routing, t_exp, t_step - t_comp)
    return got

# train_gpt2 d4: psi 3,487,232 (wte + wpe (256 + 1024) x 256, 4 blocks of
# 12 C^2 + 13 C, the final norm 2 C), f32; 6 psi + 12 x 4 x 64 x 256 FLOP a token
d4 = 327680 + 4 * (12 * 256 * 256 + 13 * 256) + 512
assert d4 == 3487232
fpt = 6 * d4 + 12 * 4 * 64 * 256
got = check("d4x22", d4, 4, 2, 2, 125e6, 2e9, 17.8e9, 256, fpt, 327680, True, False, True, range(4))
check("d4x24", d4, 4, 2, 4, 125e6, 2e9, 8.9e9, 256, fpt, 327680, True, False, True, range(4))
# what bench_cluster.sh measured on each host link (docs/benchmarks.md): the
# formula column, within 0.6 % of the veth counters
measured = {(1, "flat"): 27897856, (2, "flat"): 27897856, (3, "flat"): 43157504,
            (1, "hierarchical"): 13948928, (2, "hierarchical"): 13948928,
            (3, "hierarchical"): 21578752}
for k, v in measured.items():
    assert got[k][0] == v, (k, got[k][0], v)
# hierarchical: R times fewer bytes across
for s in range(4):
    assert got[(s, "flat")][0] == 2 * got[(s, "hierarchical")][0]
# 1e9 params, bf16, 4 x 8: 6 psi FLOP a token (no shape known), the first
# layer (head and tail of the overlap rule) taken as the largest of 32 equal
# layers, 1e9 / 32
check("p1bx48", 10**9, 2, 4, 8, 100e9, 25 * 2**30, 100e12, 4096, 6e9, 10**9 // 32, False, True, True, range(4))
got = rows("p1bx48")
assert got[(0, "flat")][0] == 2 * 10**9 * 2 * 8 * 3 // 4 == 24 * 10**9
assert got[(3, "hierarchical")][0] == 3 * 10**9 * 2 * 3 // 4
check("p1bx48off", 10**9, 2, 4, 8, 100e9, 25 * 2**30, 100e12, 4096, 6e9, 10**9 // 32, False, True, False, [2])
check("p1bx48polled", 10**9, 2, 4, 8, 100e9, 25 * 2**30, 100e12, 4096, 6e9, 10**9 // 32, False, True, False, range(4))
print("step-time rows follow the formulas")
EOF
grep -q "inter-host 100 GB/s (800 Gbit/s) per host link, each way; intra-host 26.84 GB/s" \
    "$WORK/p1bx48" || fail "the rates are not printed as given (100GB/s, 25GiB/s)"
grep -q "inter-host 125 MB/s (1 Gbit/s)" "$WORK/d4x22" || fail "1gbit is not 125 MB/s"
grep -q "intra-host 2 GB/s (16 Gbit/s)" "$WORK/d4x24" || fail "2e9 is not 2 GB/s"

# ---- --fit ranks the rungs that fit by predicted step time ---------------------
"$ZR" --fit --preset gpt2-1558m --precision bf16 --device-mem 40G --hosts 4 --ranks-per-host 8 \
    --inter-bw 100gbit --intra-bw 450GB/s --compute-rate 400T --tokens-per-step 8192 \
    >"$WORK/fit" 2>&1 || { cat "$WORK/fit"; fail "zero-report --fit with a cluster"; }
cat "$WORK/fit"
python3 - "$WORK/fit" <<'EOF' || fail "--fit's ranking is not by predicted step time"
import sys
lines = open(sys.argv[1]).read().splitlines()
ladder, timed, mode = {}, [], None
for l in lines:
    c = l.split()
    if c[:2] == ["#", "stage"]:
        mode = "ladder"; continue
    if c[:2] == ["rank", "#"]:
        mode = "timed"; continue
    if not c or not c[0].isdigit():
        continue
    if mode == "ladder":
        ladder[int(c[0])] = (c[1], c[2], c[3], "fits" in l)
    elif mode == "timed":
        timed.append((int(c[0]), int(c[1]), c[2], c[3], c[4], c[5], float(c[12])))
fitting = [k for k, v in ladder.items() if v[3]]
assert fitting and len(timed) == 2 * len(fitting), (len(timed), fitting)
assert [t[0] for t in timed] == list(range(1, len(timed) + 1))
steps = [t[6] for t in timed]
assert steps == sorted(steps), steps
for t in timed:  # each row is its rung, and only rungs that fit are there
    assert ladder[t[1]][:3] == (t[2], t[3], t[4]) and ladder[t[1]][3], t
# on a 100 Gbit/s network the hierarchical routing is ahead, stage 3 flat last
assert timed[0][5] == "hierarchical" and timed[-1][5] == "flat" and timed[-1][2] == "3", (timed[0], timed[-1])
best = [l for l in lines if l.startswith("fastest: ")]
assert best and best[0].startswith("fastest: #%d, stage %s" % (timed[0][1], timed[0][2])), best
print("ranked: %d rows, %.4f .. %.4f s" % (len(timed), steps[0], steps[-1]))
EOF
# without a cluster --fit prints the ladder only, as before
"$ZR" --fit --preset gpt2-124m --device-mem 64G --world-size 4 >"$WORK/fit0" 2>&1 ||
    { cat "$WORK/fit0"; fail "zero-report --fit without a cluster"; }
! grep -q "predicted" "$WORK/fit0" || fail "--fit without a cluster printed the step-time ranking"
grep -q '<- auto' "$WORK/fit0" || fail "--fit without a cluster lost its ladder"

# ---- bad cluster flags: exit 2, the flag and the value named -------------------
CL=(--hosts 2 --ranks-per-host 2 --inter-bw 1gbit --intra-bw 2GB/s --compute-rate 1e9
    --tokens-per-step 256)
bad() { # WHAT EXPECT ARGS... : exit 2 and a message containing EXPECT
    local what=$1 expect=$2 rc=0; shift 2
    "$ZR" "$@" >"$WORK/bad" 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || { cat "$WORK/bad"; fail "$what: exit $rc, not 2"; }
    grep -qF -- "$expect" "$WORK/bad" || { cat "$WORK/bad"; fail "$what: the message does not say '$expect'"; }
}
bad "bits or bytes" "--inter-bw '10gb'" --estimate --preset gpt2-124m "${CL[@]}" --inter-bw 10gb
bad "no unit after a prefix" "--intra-bw '10G'" --estimate --preset gpt2-124m "${CL[@]}" --intra-bw 10G
bad "a zero rate" "--inter-bw '0gbit'" --estimate --preset gpt2-124m "${CL[@]}" --inter-bw 0gbit
bad "a negative rate" "--intra-bw '-1GB/s'" --estimate --preset gpt2-124m "${CL[@]}" --intra-bw -1GB/s
bad "no hosts" "--hosts '0'" --estimate --preset gpt2-124m "${CL[@]}" --hosts 0
bad "half a rank" "--ranks-per-host '2.5'" --estimate --preset gpt2-124m "${CL[@]}" --ranks-per-host 2.5
bad "a word for a rate" "--compute-rate 'fast'" --estimate --preset gpt2-124m "${CL[@]}" --compute-rate fast
bad "no tokens" "--tokens-per-step '0'" --estimate --preset gpt2-124m "${CL[@]}" --tokens-per-step 0
bad "a cluster without its bandwidth" "--intra-bw RATE is missing" \
    --estimate --preset gpt2-124m --hosts 2 --ranks-per-host 2 --inter-bw 1gbit --compute-rate 1e9 --tokens-per-step 1
bad "a progress model" "--comm-progress 'sometimes'" --estimate --preset gpt2-124m "${CL[@]}" --comm-progress sometimes
bad "world size against the cluster" "--world-size 5" --estimate --preset gpt2-124m "${CL[@]}" --world-size 5
bad "a cluster without --estimate" "--hosts, --ranks-per-host" --hosts 2 "$WORK/bench.json"
bad "--fit, a bad rate" "--inter-bw '1 gbit'" --fit --device-mem 1G --preset gpt2-124m "${CL[@]}" --inter-bw "1 gbit"
echo "PASS"
