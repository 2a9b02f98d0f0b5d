# Values and gradients of PyTorch's convolution, pooling, normalisation and joining ops on small float64
# cases: the reference for tapegrad's kernels (test/kernels-conv-reference.test.ts) and, later, its ops.
# Run with Debian's python3-torch (1.13):
#   /usr/bin/python3 scripts/conv-reference.py            # writes test/fixtures/conv-reference.json
#
# Each case: "op" (the torch.nn.functional name), "args" (its non-tensor arguments, PyTorch's names),
# "inputs" (name -> {"shape", "data"} flattened row-major), "output", and, for a fixed random upstream
# gradient "upstream" of the output's shape, "grads" (name -> the gradient of <output, upstream> with
# respect to that input). max_pool2d cases add "indices" (return_indices=True); batch_norm cases add the
# running statistics after the call ("running_mean_after", "running_var_after").
import json
import os
import sys
import tempfile

import warnings

import torch
import torch.nn.functional as F

# padding="same" with an even kernel: PyTorch warns that it pads a copy of the input, which is the point here
warnings.filterwarnings("ignore", message="Using padding='same'")

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)
cases = {}


def tensor_json(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1).tolist()]}


def case(name, op, fn, inputs, args, extra=None, differentiable=None):
    """Runs fn(*inputs) (its output: a tensor, or a tuple whose first element is the output), backpropagates
    a random upstream gradient, and records everything. differentiable: names of the inputs to record
    gradients for (default: all)."""
    leaves = {k: v.clone().requires_grad_(differentiable is None or k in differentiable) for k, v in inputs.items()}
    result = fn(**leaves)
    out = result[0] if isinstance(result, tuple) else result
    upstream = torch.randn(out.shape)
    out.backward(upstream)
    entry = {
        "op": op,
        "args": args,
        "inputs": {k: tensor_json(v) for k, v in inputs.items()},
        "output": tensor_json(out),
        "upstream": tensor_json(upstream),
        "grads": {k: tensor_json(v.grad) for k, v in leaves.items() if v.grad is not None},
    }
    if extra:
        entry.update(extra(result, leaves))
    cases[name] = entry


def conv(name, n, cin, h, w, cout, k, bias=True, **args):
    groups = args.get("groups", 1)
    kh, kw = (k, k) if isinstance(k, int) else k
    inputs = {"input": torch.randn(n, cin, h, w), "weight": torch.randn(cout, cin // groups, kh, kw)}
    if bias:
        inputs["bias"] = torch.randn(cout)
    case(name, "conv2d", lambda **t: F.conv2d(t["input"], t["weight"], t.get("bias"), **args), inputs, args)


conv("conv2d_basic", 2, 3, 5, 6, 4, 3)
conv("conv2d_pad1", 2, 2, 5, 5, 3, 3, padding=1)
conv("conv2d_pad_pair", 1, 2, 4, 6, 3, (3, 2), padding=(2, 1))
conv("conv2d_stride2", 2, 2, 7, 6, 3, 3, stride=2, padding=1)
conv("conv2d_stride_pair", 1, 3, 7, 8, 2, (2, 3), stride=(2, 3), padding=(0, 1))
conv("conv2d_same_odd", 1, 2, 5, 6, 3, 3, padding="same")
conv("conv2d_same_even", 1, 2, 5, 6, 2, (4, 2), padding="same")
conv("conv2d_same_dilated", 1, 2, 6, 5, 2, 3, padding="same", dilation=(2, 1))
conv("conv2d_valid", 2, 1, 6, 6, 2, 5, padding="valid")
conv("conv2d_dilation", 1, 2, 7, 7, 2, 3, dilation=2, padding=1)
conv("conv2d_groups", 2, 4, 5, 5, 6, 3, groups=2, padding=1)
conv("conv2d_depthwise", 1, 3, 5, 5, 3, 3, groups=3, padding=1, bias=False)
conv("conv2d_pointwise", 2, 3, 4, 4, 5, 1)
conv("conv2d_nobias_strided_dilated", 1, 2, 9, 8, 2, 2, bias=False, stride=2, dilation=2, padding=(1, 0))


def max_pool(name, shape, k, data=None, **args):
    x = torch.randn(*shape) if data is None else data
    case(name, "max_pool2d", lambda input: F.max_pool2d(input, k, return_indices=True, **args), {"input": x},
         {"kernel_size": k, **args}, extra=lambda r, _: {"indices": {"shape": list(r[1].shape), "data": r[1].reshape(-1).tolist()}})


max_pool("max_pool2d_2x2", (2, 2, 6, 6), 2)
max_pool("max_pool2d_odd", (1, 2, 5, 7), 2)
max_pool("max_pool2d_ceil", (1, 2, 5, 7), 2, ceil_mode=True)
max_pool("max_pool2d_stride_pad", (1, 2, 7, 6), 3, stride=2, padding=1)
max_pool("max_pool2d_pad_ceil", (1, 1, 6, 5), 3, stride=2, padding=1, ceil_mode=True)
max_pool("max_pool2d_dilation", (1, 2, 7, 7), (2, 3), stride=1, padding=1, dilation=2)
max_pool("max_pool2d_overlap", (1, 1, 5, 5), 3, stride=1)
# integer values: ties, where PyTorch picks the first maximum in window order
max_pool("max_pool2d_ties", (1, 2, 4, 6), (2, 3), stride=(2, 1), data=torch.randint(0, 3, (1, 2, 4, 6)).double())


def avg_pool(name, shape, k, **args):
    case(name, "avg_pool2d", lambda input: F.avg_pool2d(input, k, **args), {"input": torch.randn(*shape)}, {"kernel_size": k, **args})


avg_pool("avg_pool2d_2x2", (2, 2, 6, 6), 2)
avg_pool("avg_pool2d_odd", (1, 2, 5, 7), 2)
avg_pool("avg_pool2d_ceil", (1, 2, 5, 7), 2, ceil_mode=True)
avg_pool("avg_pool2d_pad", (1, 2, 5, 6), 3, stride=2, padding=1)
avg_pool("avg_pool2d_pad_exclude", (1, 2, 5, 6), 3, stride=2, padding=1, count_include_pad=False)
# ceil-mode windows that hang past the padding: the divisor counts only what lies inside input + padding
avg_pool("avg_pool2d_pad_ceil", (1, 1, 6, 5), 3, stride=2, padding=1, ceil_mode=True)
avg_pool("avg_pool2d_pad_ceil_exclude", (1, 1, 6, 5), 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
avg_pool("avg_pool2d_rect", (2, 1, 7, 8), (3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True)

for name, shape, out in [("adaptive_avg_pool2d_global", (2, 3, 5, 4), 1), ("adaptive_avg_pool2d_grow", (1, 2, 3, 4), (5, 7)),
                         ("adaptive_avg_pool2d_shrink", (1, 2, 7, 9), (3, 4))]:
    case(name, "adaptive_avg_pool2d", lambda input, out=out: F.adaptive_avg_pool2d(input, out),
         {"input": torch.randn(*shape)}, {"output_size": out})


def batch_norm(name, shape, training, affine=True, momentum=0.1, eps=1e-5):
    c = shape[1]
    inputs = {"input": torch.randn(*shape) * 2 + 0.5}
    if affine:
        inputs["weight"] = torch.randn(c)
        inputs["bias"] = torch.randn(c)
    running_mean = torch.randn(c)
    running_var = torch.rand(c) + 0.5
    args = {"training": training, "momentum": momentum, "eps": eps}
    state = {}

    def fn(**t):
        rm, rv = running_mean.clone(), running_var.clone()
        out = F.batch_norm(t["input"], rm, rv, t.get("weight"), t.get("bias"), training=training, momentum=momentum, eps=eps)
        state["rm"], state["rv"] = rm, rv
        return out

    case(name, "batch_norm", fn, {**inputs, "running_mean": running_mean, "running_var": running_var}, args,
         extra=lambda *_: {"running_mean_after": tensor_json(state["rm"]), "running_var_after": tensor_json(state["rv"])},
         differentiable={"input", "weight", "bias"})


batch_norm("batch_norm2d_train", (3, 2, 3, 4), True)
batch_norm("batch_norm2d_train_noaffine", (2, 3, 2, 2), True, affine=False, momentum=0.3, eps=1e-3)
batch_norm("batch_norm1d_train", (5, 3), True)
batch_norm("batch_norm1d_train_3d", (2, 3, 4), True)
batch_norm("batch_norm2d_eval", (2, 2, 3, 3), False)


def layer_norm(name, shape, normalized, affine=True, eps=1e-5):
    inputs = {"input": torch.randn(*shape) * 1.5 - 0.3}
    if affine:
        inputs["weight"] = torch.randn(*normalized)
        inputs["bias"] = torch.randn(*normalized)
    case(name, "layer_norm", lambda **t: F.layer_norm(t["input"], normalized, t.get("weight"), t.get("bias"), eps),
         inputs, {"normalized_shape": list(normalized), "eps": eps})


layer_norm("layer_norm_last", (3, 5), (5,))
layer_norm("layer_norm_last2", (2, 3, 4), (3, 4))
layer_norm("layer_norm_noaffine", (4, 6), (6,), affine=False, eps=1e-3)

for name, shape, pad, value in [("pad_constant", (2, 3, 4), (1, 2), 0.0), ("pad_constant_4d", (1, 2, 3, 3), (1, 0, 2, 1), 0.5),
                                ("pad_negative", (1, 2, 4, 5), (-1, 1, 0, -2), 0.0)]:
    case(name, "pad", lambda input, pad=pad, value=value: F.pad(input, pad, mode="constant", value=value),
         {"input": torch.randn(*shape)}, {"pad": list(pad), "mode": "constant", "value": value})

case("cat_dim1", "cat", lambda a, b, c: torch.cat([a, b, c], dim=1),
     {"a": torch.randn(2, 1, 3), "b": torch.randn(2, 3, 3), "c": torch.randn(2, 2, 3)}, {"dim": 1})
case("cat_dim_neg", "cat", lambda a, b: torch.cat([a, b], dim=-1), {"a": torch.randn(2, 3), "b": torch.randn(2, 1)}, {"dim": -1})
case("stack_dim0", "stack", lambda a, b: torch.stack([a, b], dim=0), {"a": torch.randn(2, 3), "b": torch.randn(2, 3)}, {"dim": 0})
case("stack_dim_last", "stack", lambda a, b, c: torch.stack([a, b, c], dim=-1),
     {"a": torch.randn(2, 2), "b": torch.randn(2, 2), "c": torch.randn(2, 2)}, {"dim": -1})

payload = {"generator": "scripts/conv-reference.py", "torch": torch.__version__, "dtype": "float64", "cases": cases}
target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "conv-reference.json")
text = json.dumps(payload, separators=(",", ":"))
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".conv-reference.", suffix=".tmp")
with os.fdopen(fd, "w") as f:
    f.write(text + "\n")
os.chmod(tmp, 0o644)
os.replace(tmp, target)
print(f"wrote {os.path.relpath(target)}: {len(cases)} cases, {len(text)} bytes", file=sys.stderr)
