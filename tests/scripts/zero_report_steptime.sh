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
# hybrid groups of 2 inside hosts of 4 (the config's S)
cat >"$WORK/hybrid2.json" <<'EOF'
{"hybrid_shard_size": 2, "zero_optimization": {"stage3_prefetch_bucket_size": 0, "stage3_param_persistence_threshold": 0}}
EOF
for s in 1 3; do
    run_est "d4x24s2-$s" --preset train-gpt2-d4 --hosts 2 --ranks-per-host 4 --inter-bw 1gbit \
        --intra-bw 2e9 --compute-rate 8.9e9 --tokens-per-step 256 --seq-len 64 \
        --config "$WORK/hybrid2.json" --stage $s
done
cat "$WORK/d4x24s2-1" "$WORK/d4x24s2-3" >"$WORK/d4x24s2"
# polled, without and with 10 ms a phase
for lat in 0 10ms; do
    run_est "d4x22polled$lat" --preset train-gpt2-d4 --hosts 2 --ranks-per-host 2 --inter-bw 1gbit \
        --intra-bw 2GB/s --compute-rate 17.8e9 --tokens-per-step 256 --seq-len 64 \
        --config "$WORK/bench.json" --stage all --comm-progress polled --latency $lat
done
run_est d4x22phased --preset train-gpt2-d4 --hosts 2 --ranks-per-host 2 --inter-bw 1gbit \
    --intra-bw 2GB/s --compute-rate 17.8e9 --tokens-per-step 256 --seq-len 64 \
    --config "$WORK/bench.json" --stage all --comm-progress phased
mv "$WORK/d4x22polled0" "$WORK/d4x22polled"
mv "$WORK/d4x22polled10ms" "$WORK/d4x22lat"
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
        if len(c) == 10 and c[0] in "0123" and c[1] in ("flat", "hierarchical", "hpz", "hybrid"):
            out[(int(c[0]), c[1])] = [int(c[2]), int(c[3])] + [float(x) for x in c[4:]]
    return out

close = lambda a, e: abs(a - e) <= 5e-5 + 1e-4 * abs(e)

def check_grouped(name, psi, b, H, R, inter, intra, rate, tokens, fpt, first_layer, tied, prefetch, overlap, stages, group=None, latency=0.0, layers=None):
    # group: the config's hybrid_shard_size (hpz's P stays the ranks of a host)
    """hpz (stage 3) and hybrid rows: their lanes, computed here from the
    documented rules (groups of G consecutive ranks aligned with the hosts)."""
    got = {k: v for k, v in rows(name).items() if k[1] in ("hpz", "hybrid")}
    N, G = H * R, group or R
    want_keys = [(s, "hybrid") for s in stages] + [(3, "hpz")] * (3 in stages)
    assert sorted(got) == sorted(want_keys), (name, sorted(got))
    P, E = psi * b, first_layer * b
    def lane_world():  # flat over the world: (off, own, den, phases)
        return (N - R, R - 1, N, 1)
    def lane_block(K):
        here = min(K, R)
        return (K - here, here - 1, K, 1)
    def lane_replicas(S):
        g, here = N // S, (R // S if S < R else 1)
        return (g - here, here - 1, g, 1)
    def secs(lane, v, coll):
        off, own, den, ph = lane
        return max(v * R * off / den / inter, v * own / den / intra) + coll * ph * latency if v else 0
    def link_own(lane, v):
        off, own, den, _ = lane
        return (v * R * off // den, v * own // den)
    L = layers
    for (s, routing), (link, own, t_inter, t_intra, t_comm, t_comp, t_step, t_exp) in got.items():
        comp = tokens * fpt / rate
        if routing == "hpz":  # the forward gathers and the reductions over the world, the rest in the group
            w, g = lane_world(), lane_block(R)
            vw, vg = 2 * P, P + (E if tied else 0)
            parts = [(w, vw), (g, vg)]
            lanes = {"gather": (w, P, L), "back": (g, vg, L + tied), "reduce": (w, P, L), "replica": (None, 0, 0)}
        else:
            g, r = lane_block(G), lane_replicas(G)
            vg = (3 * P + (E if tied else 0)) if s == 3 else 2 * P
            vr = round(2 * P / (1 if s == 0 else G))
            parts = [(g, vg), (r, vr)]
            lanes = {"gather": (g, P if s else 0, L if s else 0),
                     "back": (g, P + (E if tied else 0) if s == 3 else 0, L + tied if s == 3 else 0),
                     "reduce": (g, 2 * P if s == 0 else P, 2 * L if s == 0 else L), "replica": (r, vr, 2 * L)}
        want_link = sum(link_own(l, v)[0] for l, v in parts)
        want_own = sum(link_own(l, v)[1] for l, v in parts)
        assert (link, own) == (want_link, want_own), (name, s, routing, link, want_link, own, want_own)
        comm = sum(secs(l, v, c) for l, v, c in lanes.values() if l)
        assert close(t_comm, comm), (name, s, routing, t_comm, comm)
        if not overlap:
            step = comp + comm
        else:
            F, B = comp / 3, 2 * comp / 3
            ga, bk, rd = lanes["gather"], lanes["back"], lanes["reduce"]
            head = secs(ga[0], E, 1) if s else 0
            tail = secs(rd[0], 2 * E if s == 0 else E, 1)
            fwd, back, red = secs(*ga), secs(*bk), secs(*rd)
            exposed = secs(*lanes["replica"]) if lanes["replica"][0] else 0
            tiedt = secs(bk[0], E, 1) if s == 3 and tied else 0
            bwd = red
            if s == 3:
                fwd, bwd = fwd + tiedt, red + back - tiedt
                if not prefetch:
                    exposed, fwd, head, bwd = exposed + fwd + back - tiedt, 0, 0, red
            step = exposed + head + max(F, fwd - head) + max(B, bwd - tail) + tail
        assert close(t_step, step), (name, s, routing, t_step, step)
        assert abs(t_exp - (t_step - comp)) <= 1.5e-4, (name, s, routing, t_exp)
    return got

def check(name, psi, b, H, R, inter, intra, rate, tokens, fpt, first_layer, tied, prefetch, overlap, stages):
    got = {k: v for k, v in rows(name).items() if k[1] in ("flat", "hierarchical")}
    N = H * R
    assert sorted(got) == sorted((s, r) for s in stages for r in ("flat", "hierarchical")), (name, sorted(got))
    for (s, routing), (link, own, t_inter, t_intra, t_comm, t_comp, t_step, t_exp) in got.items():
        hier = routing == "hierarchical"
        v = (3 if s == 3 else 2) * psi * b + (first_layer * b if s == 3 and tied else 0)
        want_link = v * (H - 1) // H if hier else v * R * (H - 1) // H
        want_own = v * (N - H) // N if hier else v * (R - 1) // N
        assert link == want_link, (name, s, routing, link, want_link)
        assert own == want_own, (name, s, routing, own, want_own)
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
# hpz and hybrid: groups of the ranks of a host (4 + 2 layers), or the config's S = 2
grouped = check_grouped("d4x22", d4, 4, 2, 2, 125e6, 2e9, 17.8e9, 256, fpt, 327680, True, False, True, range(4), layers=6)
check_grouped("d4x24", d4, 4, 2, 4, 125e6, 2e9, 8.9e9, 256, fpt, 327680, True, False, True, range(4), layers=6)
check_grouped("d4x24s2", d4, 4, 2, 4, 125e6, 2e9, 8.9e9, 256, fpt, 327680, True, False, True, [1, 3], group=2, layers=6)
# hybrid within a host: its replica all-reduce is what crosses, psi b at
# stages 1-3 on 2 x 2 (the flat stage 3 link over hybrid's: (3 psi + E) / psi)
for s in (1, 2, 3):
    assert grouped[(s, "hybrid")][0] == d4 * 4, (s, grouped[(s, "hybrid")][0])
assert grouped[(0, "hybrid")][0] == got[(0, "flat")][0]
assert grouped[(3, "hpz")][0] == 2 * d4 * 4  # 2 psi b: the backward gathers stay home
# --latency: each phase of a collective adds it (polled: to the step)
polled, lat = rows("d4x22polled"), rows("d4x22lat")
phases = {(0, "flat"): 12, (1, "flat"): 12, (2, "flat"): 12, (3, "flat"): 19,
          (0, "hierarchical"): 24, (1, "hierarchical"): 24, (2, "hierarchical"): 24, (3, "hierarchical"): 38,
          (0, "hybrid"): 24, (1, "hybrid"): 24, (2, "hybrid"): 24, (3, "hybrid"): 31, (3, "hpz"): 19}
assert sorted(polled) == sorted(phases) == sorted(lat), sorted(lat)
for k, n in phases.items():
    assert close(lat[k][6] - polled[k][6], 0.01 * n), (k, lat[k][6] - polled[k][6], n)
check_grouped("d4x22lat", d4, 4, 2, 2, 125e6, 2e9, 17.8e9, 256, fpt, 327680, True, False, False, range(4), layers=6, latency=0.01)
# --comm-progress phased: one-phase collectives (flat reduce-scatters and
# gathers, hybrid's group) overlap as async; chained ones (hierarchical, the
# stage-0 all-reduce, hybrid's replicas) are exposed whole, as polled
phased, asyn = rows("d4x22phased"), rows("d4x22")
for (s, r), v in phased.items():
    want = (polled if r == "hierarchical" or s == 0 else asyn)[(s, r)][6]
    assert close(v[6], want), ("phased", s, r, v[6], want)
assert phased[(1, "flat")][6] < polled[(1, "flat")][6]  # it does overlap
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
check_grouped("p1bx48", 10**9, 2, 4, 8, 100e9, 25 * 2**30, 100e12, 4096, 6e9, 10**9 // 32, False, True, True, range(4), layers=32)
got = rows("p1bx48")
assert got[(0, "flat")][0] == 2 * 10**9 * 2 * 8 * 3 // 4 == 24 * 10**9
assert got[(3, "hierarchical")][0] == 3 * 10**9 * 2 * 3 // 4
check("p1bx48off", 10**9, 2, 4, 8, 100e9, 25 * 2**30, 100e12, 4096, 6e9, 10**9 // 32, False, True, False, [2])
check("p1bx48polled", 10**9, 2, 4, 8, 100e9, 25 * 2**30, 100e12, 4096, 6e9, 10**9 // 32, False, True, False, range(4))
check_grouped("p1bx48polled", 10**9, 2, 4, 8, 100e9, 25 * 2**30, 100e12, 4096, 6e9, 10**9 // 32, False, True, False, range(4), layers=32)
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
# every rung that fits, flat and hierarchical; hpZ (stage 3) and hybrid where
# their own memory fits too; each once
pairs = [(t[1], t[5]) for t in timed]
assert len(set(pairs)) == len(pairs), pairs
for k in fitting:
    assert (k, "flat") in pairs and (k, "hierarchical") in pairs, (k, pairs)
assert all(t[2] == "3" for t in timed if t[5].startswith("hpz")), timed
assert {t[5] for t in timed} == {"flat", "hierarchical", "hpz(P=8)", "hybrid(S=8)"}, {t[5] for t in timed}
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
# at 4G a rank, stage 3 fits over 32 ranks with every placement, but hybrid's
# shards over 8 only with the optimizer in host memory (rungs 8 and 9)
"$ZR" --fit --preset gpt2-1558m --precision bf16 --device-mem 4G --hosts 4 --ranks-per-host 8 \
    --inter-bw 100gbit --intra-bw 450GB/s --compute-rate 400T --tokens-per-step 8192 \
    >"$WORK/fit4" 2>&1 || { cat "$WORK/fit4"; fail "zero-report --fit --device-mem 4G"; }
hybrid_rungs=$(awk '$6 == "hybrid(S=8)" {print $2}' "$WORK/fit4" | sort | xargs)
hpz_rungs=$(awk '$6 == "hpz(P=8)" {print $2}' "$WORK/fit4" | sort | xargs)
[ "$hybrid_rungs" = "8 9" ] && [ "$hpz_rungs" = "4 7 8 9" ] || {
    cat "$WORK/fit4"; fail "--fit: hybrid rows for rungs '$hybrid_rungs' (want 8 9), hpz for '$hpz_rungs' (want 4 7 8 9)"; }

# without a cluster --fit prints the ladder only, as before
"$ZR" --fit --preset gpt2-124m --device-mem 64G --world-size 4 >"$WORK/fit0" 2>&1 ||
    { cat "$WORK/fit0"; fail "zero-report --fit without a cluster"; }
! grep -q "predicted" "$WORK/fit0" || fail "--fit without a cluster printed the step-time ranking"
grep -q '<- auto' "$WORK/fit0" || fail "--fit without a cluster lost its ladder"

# ---- qwZ and qgZ: the quantized volumes ----------------------------------------
# GPT-2 d4 on 2 x 2 as above, with qgZ int8 (every stage) and int4, and qwZ +
# qgZ (stage 3): each row's link bytes against the plain row's, scaled by
# bits/8 + 4/B over 4 bytes for the quantized part (stages 1-2: the
# reduce-scatter, not the gather; stage 0: the all-reduce's first half;
# stage 3 with both: everything).
for q in "qgz8:8:false" "qgz4:4:false" "both:8:true"; do
    IFS=: read -r name bits qwz <<<"$q"
    printf '{"zero_optimization": {"stage3_prefetch_bucket_size": 0, "stage3_param_persistence_threshold": 0, "zero_quantized_gradients": true, "zero_quantized_gradient_bits": %s, "zero_quantized_block_size": 64, "zero_quantized_weights": %s}}\n' \
        "$bits" "$qwz" >"$WORK/$name.json"
    run_est "d4x22$name" --preset train-gpt2-d4 --hosts 2 --ranks-per-host 2 --inter-bw 1gbit \
        --intra-bw 2GB/s --compute-rate 17.8e9 --tokens-per-step 256 --seq-len 64 \
        --config "$WORK/$name.json" --stage "$([ "$qwz" = true ] && echo 3 || echo all)"
done
# Top-k (ratio 0.01, stages 0-1): an all-gather of 8 r bytes an element to
# each of the N-1 peers: at stage 0 r N of the plain row's bytes, at stage 1
# (1 + 2 r N) / 2 (the parameter all-gather stays).
echo '{"zero_optimization": {"gradient_topk_ratio": 0.01}}' >"$WORK/topk.json"
for s in 0 1; do
    run_est "d4x22topk$s" --preset train-gpt2-d4 --hosts 2 --ranks-per-host 2 --inter-bw 1gbit \
        --intra-bw 2GB/s --compute-rate 17.8e9 --tokens-per-step 256 --seq-len 64 \
        --config "$WORK/topk.json" --stage "$s"
done
grep -q "top-k (ratio r = 0.01)" "$WORK/d4x22topk0" || fail "no note on top-k's volumes"
grep -q "quantized (qgZ, reductions int4)" "$WORK/d4x22qgz4" || fail "no note on the quantized volumes"
python3 - "$WORK" <<'EOF' || fail "the quantized and top-k rows do not scale the plain rows' bytes"
import sys
work = sys.argv[1]
def link(name):
    out = {}
    for line in open(f"{work}/{name}"):
        c = line.split()
        if len(c) == 10 and c[0] in "0123" and c[1] in ("flat", "hierarchical"):
            out[(int(c[0]), c[1])] = int(c[2])
    return out
plain = link("d4x22")
for name, bits, both in (("qgz8", 8, False), ("qgz4", 4, False), ("both", 8, True)):
    f = (bits / 8 + 4 / 64) / 4
    for key, got in link("d4x22" + name).items():
        s = key[0]
        if s == 3 and not both:  # the tied embedding's second gather is not reduced
            continue
        want = plain[key] * (f if both else (f + 1) / 2)
        assert abs(got - want) <= 2, (name, key, got, want)
        print(f"{name} stage {s} {key[1]}: {got} link bytes, {got / plain[key]:.4f} of plain")
r, N = 0.01, 4
for s in (0, 1):
    for key, got in link(f"d4x22topk{s}").items():
        want = plain[key] * (r * N if s == 0 else (1 + 2 * r * N) / 2)
        assert abs(got - want) <= 2, (key, got, want)
        print(f"topk stage {s} {key[1]}: {got} link bytes, {got / plain[key]:.4f} of plain")
EOF
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
bad "a negative latency" "--latency '-1ms'" --estimate --preset gpt2-124m "${CL[@]}" --latency -1ms
bad "a latency in minutes" "--latency '2min'" --estimate --preset gpt2-124m "${CL[@]}" --latency 2min
bad "a progress model" "--comm-progress 'sometimes'" --estimate --preset gpt2-124m "${CL[@]}" --comm-progress sometimes
bad "world size against the cluster" "--world-size 5" --estimate --preset gpt2-124m "${CL[@]}" --world-size 5
bad "a cluster without --estimate" "--hosts, --ranks-per-host" --hosts 2 "$WORK/bench.json"
bad "--fit, a bad rate" "--inter-bw '1 gbit'" --fit --device-mem 1G --preset gpt2-124m "${CL[@]}" --inter-bw "1 gbit"
echo "PASS"
