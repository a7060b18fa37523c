# The torch CPU reference of bench/merge.ts: the same merge as the Graft recipe, done the way a
# user would script it, tensor by tensor: load each input tensor, compute in float32 in the order
# mergekit does, cast back to the input dtype, write it. The output has the first input's layout.
# Safetensors is read and written directly (header JSON + raw bytes) so only torch is needed.
#
# Usage: python3 torch_merge.py linear <out> <model> <weight> [<model> <weight> ...]
#        python3 torch_merge.py ties <out> <density> <base> <model> <weight> [<model> <weight> ...]
import json
import os
import struct
import sys

import torch

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


class Checkpoint:
    def __init__(self, path):
        self.file = open(path, "rb")
        (length,) = struct.unpack("<Q", self.file.read(8))
        self.header_bytes = self.file.read(length)
        self.header = json.loads(self.header_bytes)
        self.data_start = 8 + length

    def names(self):
        return [n for n in self.header if n != "__metadata__"]

    def tensor(self, name):
        info = self.header[name]
        begin, end = info["data_offsets"]
        self.file.seek(self.data_start + begin)
        raw = bytearray(self.file.read(end - begin))
        return torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]).reshape(info["shape"])


def linear(tensors, weights):
    stacked = torch.stack([t.float() for t in tensors], dim=0)
    w = torch.tensor(weights, dtype=torch.float32).view(-1, *([1] * (stacked.dim() - 1)))
    return (w * stacked).sum(dim=0) / w.sum(dim=0)


def ties(base, tensors, weights, density):
    base = base.float()
    deltas = []
    for t in tensors:
        d = t.float() - base
        k = int(density * d.numel())
        flat = d.abs().view(-1)
        mask = torch.zeros_like(flat)
        mask[torch.topk(flat, k, sorted=False).indices] = 1
        deltas.append(d * mask.view(d.shape))
    stacked = torch.stack(deltas, dim=0)
    w = torch.tensor(weights, dtype=torch.float32).view(-1, *([1] * (stacked.dim() - 1)))
    stacked = stacked * w
    majority = torch.where(stacked.sum(dim=0) >= 0, 1.0, -1.0)
    agree = stacked.sign() == majority
    mixed = (stacked * agree).sum(dim=0)
    divisor = (w * agree).sum(dim=0)
    divisor[divisor == 0] = 1
    return base + mixed / divisor


def main():
    method, out = sys.argv[1], sys.argv[2]
    rest = sys.argv[3:]
    if method == "linear":
        base, density = None, None
    elif method == "ties":
        density, base, rest = float(rest[0]), Checkpoint(rest[1]), rest[2:]
    else:
        raise SystemExit(f"unknown method {method}: use linear or ties")
    models = [Checkpoint(p) for p in rest[0::2]]
    weights = [float(w) for w in rest[1::2]]
    layout = models[0]
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(layout.header_bytes)))
        f.write(layout.header_bytes)
        for name in layout.names():
            tensors = [m.tensor(name) for m in models]
            if method == "linear":
                merged = linear(tensors, weights)
            else:
                merged = ties(base.tensor(name), tensors, weights, density)
            dtype = DTYPES[layout.header[name]["dtype"]]
            f.seek(layout.data_start + layout.header[name]["data_offsets"][0])
            cast = merged.to(dtype).contiguous()
            # numpy has no bfloat16: 16-bit results go out as their bit patterns.
            f.write((cast if dtype == torch.float32 else cast.view(torch.int16)).numpy().tobytes())
        f.flush()
        os.fsync(f.fileno())


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    # Some builds start with one thread; the comparison is with every core in use.
    torch.set_num_threads(os.cpu_count() or 1)
    main()
