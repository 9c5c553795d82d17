#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""
tests/reference/gpt2_reference.py — PyTorch reference for the GPT-2 example
(examples/gpt2/gpt2.h, llm.c's GPT-2) on a tiny config.

Writes, next to this script:
  gpt2_tiny_model.bin  llm.c model file (int32 header[256] =
                       {20240326, 3, maxT, V, L, NH, C, Vp, 0...}, then the
                       16 tensors in llm.c order as little-endian f32)
  gpt2_tiny_ref.bin    inputs, targets, logits, loss, gradients and the
                       losses of 10 AdamW steps (layout in README.md and
                       write_ref() below)

Deterministic: fixed seed, torch.use_deterministic_algorithms(True), float32,
CPU, 1 thread. Regenerate with:  python3 tests/reference/gpt2_reference.py
"""
import math
import os
import sys

import numpy as np
import torch

# ---- configuration ---------------------------------------------------------
MAXT, V, VP, L, NH, C = 16, 250, 256, 2, 2, 32
B, T = 2, 8
NSTEPS = 10
LR, BETAS, EPS, WD = 1e-3, (0.9, 0.999), 1e-8, 0.1
SEED = 1337

MODEL_MAGIC, MODEL_VERSION = 20240326, 3
REF_MAGIC, REF_VERSION = 20261122, 1
HEADER_INTS = 256
LN_EPS = 1e-5

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_PATH = os.path.join(HERE, "gpt2_tiny_model.bin")
REF_PATH = os.path.join(HERE, "gpt2_tiny_ref.bin")

# llm.c order: (name, shape, kind); kind: "w" = N(0, 0.02) (weight decay),
# "lnw" = 1 + 0.1 N(0,1), "b" = 0.05 N(0,1) (no weight decay)
TENSORS = [
    ("wte", (VP, C), "w"),
    ("wpe", (MAXT, C), "w"),
    ("ln1w", (L, C), "lnw"),
    ("ln1b", (L, C), "b"),
    ("qkvw", (L, 3 * C, C), "w"),
    ("qkvb", (L, 3 * C), "b"),
    ("attprojw", (L, C, C), "w"),
    ("attprojb", (L, C), "b"),
    ("ln2w", (L, C), "lnw"),
    ("ln2b", (L, C), "b"),
    ("fcw", (L, 4 * C, C), "w"),
    ("fcb", (L, 4 * C), "b"),
    ("fcprojw", (L, C, 4 * C), "w"),
    ("fcprojb", (L, C), "b"),
    ("lnfw", (C,), "lnw"),
    ("lnfb", (C,), "b"),
]
NAMES = [t[0] for t in TENSORS]
SIZES = [int(np.prod(t[1])) for t in TENSORS]
P = sum(SIZES)


def setup_torch():
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)


def init_params(gen):
    params = {}
    for name, shape, kind in TENSORS:
        z = torch.randn(shape, generator=gen, dtype=torch.float32)
        if kind == "w":
            t = 0.02 * z
        elif kind == "lnw":
            t = 1.0 + 0.1 * z
        else:
            t = 0.05 * z
        params[name] = torch.nn.Parameter(t.contiguous())
    return params


# ---- torch model (formulas written out) ------------------------------------
def layernorm(x, w, b):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased, as llm.c
    return (x - mean) / torch.sqrt(var + LN_EPS) * w + b


def gelu_tanh(x):
    s = math.sqrt(2.0 / math.pi)
    return 0.5 * x * (1.0 + torch.tanh(s * (x + 0.044715 * x * x * x)))


def attention(x, qkvw, qkvb):
    Bx, Tx, Cx = x.shape
    hs = Cx // NH
    qkv = x @ qkvw.t() + qkvb  # (B,T,3C)
    q = qkv[..., 0:Cx].view(Bx, Tx, NH, hs).transpose(1, 2)  # (B,NH,T,hs)
    k = qkv[..., Cx:2 * Cx].view(Bx, Tx, NH, hs).transpose(1, 2)
    v = qkv[..., 2 * Cx:3 * Cx].view(Bx, Tx, NH, hs).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B,NH,T,T)
    mask = torch.tril(torch.ones(Tx, Tx, dtype=torch.bool))
    att = att.masked_fill(~mask, float("-inf"))
    att = torch.softmax(att, dim=-1)
    y = att @ v  # (B,NH,T,hs)
    return y.transpose(1, 2).contiguous().view(Bx, Tx, Cx)


def forward(p, inputs, targets):
    Tx = inputs.shape[1]
    x = p["wte"][inputs] + p["wpe"][:Tx].unsqueeze(0)  # (B,T,C)
    for l in range(L):
        h = layernorm(x, p["ln1w"][l], p["ln1b"][l])
        a = attention(h, p["qkvw"][l], p["qkvb"][l])
        x = x + (a @ p["attprojw"][l].t() + p["attprojb"][l])
        h = layernorm(x, p["ln2w"][l], p["ln2b"][l])
        h = gelu_tanh(h @ p["fcw"][l].t() + p["fcb"][l])
        x = x + (h @ p["fcprojw"][l].t() + p["fcprojb"][l])
    x = layernorm(x, p["lnfw"], p["lnfb"])
    logits = x @ p["wte"].t()  # (B,T,Vp), padded rows included
    # softmax over the first V logits only, mean over all B*T positions
    loss = torch.nn.functional.cross_entropy(
        logits[..., :V].reshape(-1, V), targets.reshape(-1), reduction="mean")
    return logits, loss


# ---- numpy float64 model, for the self-check -------------------------------
def np_forward_loss(flat, inputs, targets):
    """Loss (float64) computed from a flat llm.c-ordered parameter vector."""
    p, off = {}, 0
    for (name, shape, _), n in zip(TENSORS, SIZES):
        p[name] = flat[off:off + n].reshape(shape)
        off += n
    assert off == flat.size

    def ln(x, w, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + LN_EPS) * w + b

    Bx, Tx = inputs.shape
    hs = C // NH
    x = p["wte"][inputs] + p["wpe"][:Tx][None]
    for l in range(L):
        h = ln(x, p["ln1w"][l], p["ln1b"][l])
        qkv = h @ p["qkvw"][l].T + p["qkvb"][l]
        out = np.zeros_like(h)
        for b in range(Bx):
            for hh in range(NH):
                q = qkv[b, :, hh * hs:(hh + 1) * hs]
                k = qkv[b, :, C + hh * hs:C + (hh + 1) * hs]
                v = qkv[b, :, 2 * C + hh * hs:2 * C + (hh + 1) * hs]
                for t in range(Tx):
                    s = (k[:t + 1] @ q[t]) / math.sqrt(hs)
                    e = np.exp(s - s.max())
                    out[b, t, hh * hs:(hh + 1) * hs] = (e / e.sum()) @ v[:t + 1]
        x = x + out @ p["attprojw"][l].T + p["attprojb"][l]
        h = ln(x, p["ln2w"][l], p["ln2b"][l])
        u = h @ p["fcw"][l].T + p["fcb"][l]
        u = 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
        x = x + u @ p["fcprojw"][l].T + p["fcprojb"][l]
    x = ln(x, p["lnfw"], p["lnfb"])
    logits = x @ p["wte"].T
    z = logits[..., :V]
    z = z - z.max(-1, keepdims=True)
    lse = np.log(np.exp(z).sum(-1))
    nll = lse - np.take_along_axis(z, targets[..., None], -1)[..., 0]
    return nll.mean(), logits


# ---- writers / readers -----------------------------------------------------
def flat_params(p, attr=None):
    parts = []
    for name in NAMES:
        t = p[name] if attr is None else getattr(p[name], attr)
        parts.append(t.detach().reshape(-1).cpu().numpy().astype("<f4"))
    out = np.concatenate(parts)
    assert out.size == P
    return out


def write_model(path, flat):
    hdr = np.zeros(HEADER_INTS, dtype="<i4")
    hdr[:8] = [MODEL_MAGIC, MODEL_VERSION, MAXT, V, L, NH, C, VP]
    with open(path, "wb") as f:
        f.write(hdr.tobytes())
        f.write(flat.astype("<f4").tobytes())


def write_ref(path, inputs, targets, logits, loss, grads, losses):
    hdr = np.zeros(HEADER_INTS, dtype="<i4")
    hdr[:8] = [REF_MAGIC, REF_VERSION, B, T, len(losses), P, VP, V]
    with open(path, "wb") as f:
        f.write(hdr.tobytes())
        f.write(inputs.astype("<i4").tobytes())
        f.write(targets.astype("<i4").tobytes())
        f.write(logits.astype("<f4").tobytes())
        f.write(np.array([loss], dtype="<f4").tobytes())
        f.write(grads.astype("<f4").tobytes())
        f.write(np.asarray(losses, dtype="<f4").tobytes())


def read_model(path):
    raw = open(path, "rb").read()
    hdr = np.frombuffer(raw, dtype="<i4", count=HEADER_INTS)
    flat = np.frombuffer(raw, dtype="<f4", offset=4 * HEADER_INTS)
    return hdr, flat


def read_ref(path):
    raw = open(path, "rb").read()
    hdr = np.frombuffer(raw, dtype="<i4", count=HEADER_INTS)
    b, t, nl, p, vp = int(hdr[2]), int(hdr[3]), int(hdr[4]), int(hdr[5]), int(hdr[6])
    off = 4 * HEADER_INTS
    out = {"hdr": hdr}
    for key, dt, n in [("inputs", "<i4", b * t), ("targets", "<i4", b * t),
                       ("logits", "<f4", b * t * vp), ("loss", "<f4", 1),
                       ("grads", "<f4", p), ("losses", "<f4", nl)]:
        out[key] = np.frombuffer(raw, dtype=dt, count=n, offset=off)
        off += 4 * n
    assert off == len(raw), f"{path}: {len(raw) - off} trailing bytes"
    return out


# ---- main ------------------------------------------------------------------
def main():
    setup_torch()
    gen = torch.Generator().manual_seed(SEED)
    p = init_params(gen)
    inputs = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)
    targets = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)

    init_flat = flat_params(p)
    write_model(MODEL_PATH, init_flat)

    # forward + backward once
    logits, loss = forward(p, inputs, targets)
    loss.backward()
    logits_np = logits.detach().numpy().astype("<f4").reshape(-1)
    loss0 = float(loss.item())
    grads = flat_params(p, "grad")

    # 10 AdamW steps on the same batch (fresh grads each step)
    decay = [p[n] for n, _, k in TENSORS if k == "w"]
    no_decay = [p[n] for n, _, k in TENSORS if k != "w"]
    assert all(t.dim() >= 2 for t in decay) and len(decay) == 6
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WD},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=LR, betas=BETAS, eps=EPS, foreach=False)
    losses = []
    for _ in range(NSTEPS):
        opt.zero_grad(set_to_none=True)
        _, l = forward(p, inputs, targets)
        l.backward()
        losses.append(float(l.item()))
        opt.step()
    assert losses[0] == loss0, (losses[0], loss0)

    write_ref(REF_PATH, inputs.numpy().reshape(-1), targets.numpy().reshape(-1),
              logits_np, loss0, grads, losses)

    # ---- self-check: re-read both files with numpy ----
    mhdr, mflat = read_model(MODEL_PATH)
    assert list(mhdr[:8]) == [MODEL_MAGIC, MODEL_VERSION, MAXT, V, L, NH, C, VP]
    assert not mhdr[8:].any()
    assert mflat.size == P and np.array_equal(mflat, init_flat)
    assert os.path.getsize(MODEL_PATH) == 4 * (HEADER_INTS + P)

    r = read_ref(REF_PATH)
    assert list(r["hdr"][:8]) == [REF_MAGIC, REF_VERSION, B, T, NSTEPS, P, VP, V]
    assert not r["hdr"][8:].any()
    assert os.path.getsize(REF_PATH) == 4 * (HEADER_INTS + 2 * B * T + B * T * VP
                                             + 1 + P + NSTEPS)
    assert r["inputs"].min() >= 0 and r["inputs"].max() < V
    assert r["targets"].min() >= 0 and r["targets"].max() < V
    assert np.isfinite(r["logits"]).all() and np.isfinite(r["grads"]).all()
    assert float(r["losses"][0]) == float(r["loss"][0])

    # independent float64 numpy forward from the *saved* model file
    ins = r["inputs"].reshape(B, T).astype(np.int64)
    tgs = r["targets"].reshape(B, T).astype(np.int64)
    f64 = mflat.astype(np.float64)
    np_loss, np_logits = np_forward_loss(f64, ins, tgs)
    dl = abs(np_loss - float(r["loss"][0]))
    dlog = np.abs(np_logits.reshape(-1) - r["logits"]).max()
    assert dl < 1e-5, f"loss mismatch numpy {np_loss} vs ref {r['loss'][0]}"
    assert dlog < 1e-5, f"logits mismatch, max |diff| {dlog}"

    # per-position check: loss at (b=1, t=T-1) from the saved logits by hand
    row = r["logits"].reshape(B, T, VP)[1, T - 1, :V].astype(np.float64)
    pos_nll = np.log(np.exp(row - row.max()).sum()) + row.max() - row[tgs[1, T - 1]]
    z = np_logits[1, T - 1, :V]
    pos_nll_np = np.log(np.exp(z - z.max()).sum()) + z.max() - z[tgs[1, T - 1]]
    assert abs(pos_nll - pos_nll_np) < 1e-5

    # gradient layout: central differences (float64) at the entry of largest
    # |grad| in every tensor, plus a padded wte row, compared against the
    # saved gradient. Padded logits are excluded from the loss and no token is
    # >= V, so the padded wte rows' gradient is exactly zero.
    assert not r["grads"][V * C:VP * C].any(), "padded wte rows have non-zero grad"
    h = 1e-5
    checks, off = [], 0
    for name, n in zip(NAMES, SIZES):
        g = r["grads"][off:off + n]
        checks.append((name, off + int(np.argmax(np.abs(g)))))
        off += n
    checks.append(("wte[pad]", V * C + 3))  # row V, column 3
    worst = 0.0
    for name, i in checks:
        fp, fm = f64.copy(), f64.copy()
        fp[i] += h
        fm[i] -= h
        fd = (np_forward_loss(fp, ins, tgs)[0] - np_forward_loss(fm, ins, tgs)[0]) / (2 * h)
        g = float(r["grads"][i])
        err = abs(fd - g) / max(abs(fd), 1e-3)
        worst = max(worst, err)
        assert err < 1e-3, f"grad check {name}[{i}]: fd {fd} vs ref {g}"

    print(f"torch {torch.__version__}, numpy {np.__version__}")
    print(f"P = {P} parameter floats")
    print(f"wrote {MODEL_PATH} ({os.path.getsize(MODEL_PATH)} bytes)")
    print(f"wrote {REF_PATH} ({os.path.getsize(REF_PATH)} bytes)")
    print(f"self-check: |loss numpy-f64 - ref| = {dl:.3g}, "
          f"max |logits diff| = {dlog:.3g}, worst grad FD rel err = {worst:.3g}")
    print(f"step-0 loss: {loss0:.9g}")
    print("losses: " + " ".join(f"{x:.9g}" for x in losses))
    print("wte grad[0:5]: " + " ".join(f"{x:.9g}" for x in r["grads"][:5]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
