# Checkpoints of the cnn example's network between PyTorch and tapegrad (test/cnn-interop.test.ts).
# The network is the example's (packages/examples/src/examples/cnn.ts, buildCnn) with --batchnorm and
# --dropout, at small widths (channels 4 and 8, 16 hidden units) so the fixture stays small:
#   Unflatten(1, (1, 28, 28)), Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU, MaxPool2d(2),
#   Conv2d(4, 8, 3, padding=1), BatchNorm2d(8), ReLU, MaxPool2d(2), Flatten, Linear(392, 16), ReLU,
#   Dropout(0.5), Linear(16, 10)
# Run with Debian's python3-torch (1.13); the safetensors format is written and read by hand here (the
# python package is not installed):
#   /usr/bin/python3 scripts/cnn-interop.py
#       writes test/fixtures/cnn-interop.safetensors (the state dict after three training-mode batches, so
#       the running statistics and num_batches_tracked have moved) and test/fixtures/cnn-interop.json (fixed
#       inputs and the model's eval-mode logits for them)
#   /usr/bin/python3 scripts/cnn-interop.py --check MODEL.safetensors INPUTS.json [CONFIG.json]
#       loads a checkpoint (tapegrad's) into the PyTorch network with load_state_dict(strict=True) and prints
#       JSON: the eval-mode logits for the inputs, and every entry whose dtype or shape differs from the
#       network's own state dict. CONFIG.json picks another network of the family, e.g. the example's
#       defaults: {"channels": [32, 64], "hidden": 128, "batchnorm": false, "dropout": 0}
import json
import os
import struct
import sys
import tempfile

import torch
import torch.nn as nn

CONFIG = {"channels": [4, 8], "hidden": 16, "batchnorm": True, "dropout": 0.5}
DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures")


def build(config=CONFIG):
    """buildCnn's layers: batch norm after each convolution and dropout before the last layer only when asked."""
    c1, c2 = config["channels"]
    layers = [nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, c1, 3, padding=1)]
    layers += [nn.BatchNorm2d(c1)] if config["batchnorm"] else []
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 3, padding=1)]
    layers += [nn.BatchNorm2d(c2)] if config["batchnorm"] else []
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * 7 * 7, config["hidden"]), nn.ReLU()]
    layers += [nn.Dropout(config["dropout"])] if config["dropout"] > 0 else []
    return nn.Sequential(*layers, nn.Linear(config["hidden"], 10))


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".cnn-interop.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(raw[8 + n + begin:8 + n + end]), dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"])
    return out


def tensor_json(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1).tolist()]}


def make():
    torch.manual_seed(0)
    model = build()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # affine parameters away from 1 and 0, so they matter
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.3)
        model.train()
        for _ in range(3):
            model(torch.rand(8, 784) * 2)
    model.eval()
    inputs = torch.rand(4, 784)
    with torch.no_grad():
        logits = model(inputs)
    write_safetensors(os.path.join(FIXTURES, "cnn-interop.safetensors"), model.state_dict())
    payload = {"generator": "scripts/cnn-interop.py", "torch": torch.__version__, "config": CONFIG,
               "inputs": tensor_json(inputs), "logits": tensor_json(logits)}
    target = os.path.join(FIXTURES, "cnn-interop.json")
    fd, tmp = tempfile.mkstemp(dir=FIXTURES, prefix=".cnn-interop.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(payload, separators=(",", ":")) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    print(f"wrote {os.path.relpath(target)} and cnn-interop.safetensors", file=sys.stderr)


def check(checkpoint, inputs_file, config_file=None):
    config = CONFIG
    if config_file:
        with open(config_file) as f:
            config = json.load(f)
    model = build(config)
    loaded = read_safetensors(checkpoint)
    own = model.state_dict()
    differences = [f"{k}: {NAMES.get(v.dtype, v.dtype)} {list(v.shape)}, the network has {NAMES[own[k].dtype]} {list(own[k].shape)}"
                   for k, v in loaded.items() if k in own and (v.dtype != own[k].dtype or v.shape != own[k].shape)]
    model.load_state_dict(loaded, strict=True)
    model.eval()
    with open(inputs_file) as f:
        spec = json.load(f)
    x = torch.tensor(spec["data"], dtype=torch.float32).reshape(spec["shape"])
    with torch.no_grad():
        logits = model(x)
    print(json.dumps({"logits": tensor_json(logits), "differences": differences,
                      "num_batches_tracked": [int(v) for k, v in loaded.items() if k.endswith("num_batches_tracked")]}))


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--check":
        check(*sys.argv[2:])
    elif len(sys.argv) == 1:
        make()
    else:
        sys.exit("usage: cnn-interop.py [--check MODEL.safetensors INPUTS.json [CONFIG.json]]")
