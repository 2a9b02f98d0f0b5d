# Values and gradients of a few composites computed by PyTorch (float64), the reference for
# test/torch-reference.test.ts. Run with Debian's python3-torch:
#   /usr/bin/python3 scripts/torch-reference.py > test/fixtures/torch-reference.json
import torch, json
torch.manual_seed(0)
out = {}
def T(a, g=True): return torch.tensor(a, dtype=torch.float64, requires_grad=g)
x = T([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
w = T([[0.2, -0.1], [0.4, 0.3], [-0.5, 0.6]])
b = T([0.1, -0.2])
def case(name, fn, inputs):
    for t in inputs: t.grad = None
    y = fn(*inputs)
    y.sum().backward() if y.dim() > 0 else y.backward()
    out[name] = {"value": y.detach().tolist(), "grads": [t.grad.tolist() for t in inputs]}
case("mlp", lambda x, w, b: torch.log_softmax(torch.relu(x @ w + b), dim=1)[[0, 1], [1, 0]].mean(), [x, w, b])
case("logsumexp", lambda x: torch.logsumexp(x, dim=0), [x])
case("amax01", lambda x: torch.amax(x, dim=(0, 1), keepdim=True) * 1.0, [x])
case("mean_neg", lambda x: x.mean(dim=-1, keepdim=True) * x, [x])
case("softmax0", lambda x: torch.softmax(x, dim=0) * T([[1.0, 2, 3], [4, 5, 6]], False), [x])
case("div_pow", lambda x: (x.abs() + 1).pow(1.5) / (x * x + 1), [x])
case("tanh_sig", lambda x: x.tanh() * x.sigmoid() + x.exp().log(), [x])
case("softplus", lambda x: torch.nn.functional.softplus(x * T([[1.0, 10, -30], [25, 0.01, -5]], False)), [x])
case("matmul_batch", lambda x, w: (x.reshape(2, 1, 3) @ w).sum(dim=1), [x, w])
case("maximum", lambda x: torch.maximum(x, T([[1.0, 0, 3], [0, 0, 0]], False)), [x])
case("var", lambda x: ((x - x.mean(0)) ** 2).mean(), [x])
# pow's gradients where its formulas are NaN or -inf: 0 for d/da where b = 0, and for d/db where a = 0, b >= 0
case("pow_zero", lambda a, e: a ** e, [T([0.0, 2.0, 0.0, 0.0, 3.0]), T([2.0, 0.0, 0.0, 1.5, -1.0])])
# a 0-d tensor reduces over axis 0 or -1 (PyTorch), to a 0-d tensor
s = T(3.0)
case("scalar_axes", lambda s: s.sum(0) + s.mean(-1) * 2 + torch.amax(s, 0, keepdim=True) * 3 + torch.logsumexp(s, -1) * 4
     + torch.log_softmax(s, 0) + torch.amin(s, -1), [s])
print(json.dumps(out, indent=1))
