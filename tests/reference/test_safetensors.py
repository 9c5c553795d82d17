#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks a `zero-ckpt safetensors` export with Python's safetensors package.

    test_safetensors.py OUT.safetensors CONSOLIDATED.bin

CONSOLIDATED.bin is `zero-ckpt consolidate`'s output of the same checkpoint
(raw little-endian f32 in registration order) and CONSOLIDATED.bin.json its
sidecar (names, shapes, byte offsets). Every tensor of the sidecar must be in
the safetensors file with the same name, shape, dtype float32 and the same
bits, and the file must hold nothing else. Exits 77 (skipped) when the
safetensors package or numpy is not installed.
"""
import json
import sys

try:
    import numpy as np
    from safetensors.numpy import load_file
except ImportError as missing:
    print(f"skipped: {missing.name} is not installed (pip install safetensors numpy)")
    sys.exit(77)


def main(exported, consolidated):
    with open(consolidated + ".json") as f:
        sidecar = json.load(f)
    flat = np.fromfile(consolidated, dtype="<f4")
    tensors = load_file(exported)
    names = [t["name"] for t in sidecar["tensors"]]
    if sorted(tensors) != sorted(names):
        sys.exit(f"names differ: export {sorted(tensors)} vs consolidated {sorted(names)}")
    total = 0
    for t in sidecar["tensors"]:
        got = tensors[t["name"]]
        begin = t["offset_bytes"] // 4
        want = flat[begin:begin + t["numel"]].reshape(t["shape"])
        if got.dtype != np.float32 or list(got.shape) != t["shape"]:
            sys.exit(f"{t['name']}: {got.dtype} {list(got.shape)}, expected float32 "
                     f"{t['shape']}")
        if got.tobytes() != want.tobytes():
            bad = int(np.flatnonzero(got.ravel().view(np.uint32)
                                     != want.ravel().view(np.uint32))[0])
            sys.exit(f"{t['name']}: element {bad} is {got.ravel()[bad]!r}, consolidated "
                     f"{want.ravel()[bad]!r}")
        total += t["numel"]
    if total != flat.size:
        sys.exit(f"the tensors hold {total} values, the consolidated file {flat.size}")
    print(f"safetensors: {len(names)} tensors, {total} parameters: names, shapes and "
          f"bits equal to the consolidated export")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
