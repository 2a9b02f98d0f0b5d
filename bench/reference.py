"""Reference timings for `pnpm bench`: NumPy (hand-written forward/backward) and PyTorch.

Reads a JSON spec on stdin ({"threads": int|null, "workloads": [...]}) and prints one JSON object with
the median time of every workload for every tool it can import. Run by bench/run.ts, once per thread
setting; it is not meant to be called by hand, but `echo '{"workloads": []}' | python3 bench/reference.py`
shows what it finds.

BLAS and OpenMP read their thread counts from the environment when they load, so bench/tools/python.ts
sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS (and OMP_WAIT_POLICY=PASSIVE above one
thread) in this process's environment; "threads" in the spec only goes to torch.set_num_threads.
"""
import json
import os
import resource
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")

spec = json.load(sys.stdin)
threads = spec.get("threads")

tools = {}
try:
    import numpy as np
    tools["numpy"] = {"version": np.__version__}
except ImportError as error:
    np = None
    tools["numpy"] = {"missing": str(error)}
try:
    import torch
    if threads:
        torch.set_num_threads(threads)
    tools["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads()}
except ImportError as error:
    torch = None
    tools["torch"] = {"missing": str(error)}


def measure(fn, min_runs, min_time_ms, warmup):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start) * 1000 < min_time_ms:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        if len(times) >= 10000:
            break
    times.sort()
    return times[len(times) // 2], len(times)


def numpy_matmul(w):
    dtype = np.float32 if w["dtype"] == "float32" else np.float64
    rng = np.random.default_rng(0)
    a = rng.standard_normal((w["k"], w["m"]) if w["transA"] else (w["m"], w["k"])).astype(dtype)
    b = rng.standard_normal((w["n"], w["k"]) if w["transB"] else (w["k"], w["n"])).astype(dtype)
    out = np.empty((w["m"], w["n"]), dtype)
    opa = a.T if w["transA"] else a
    opb = b.T if w["transB"] else b
    return lambda: np.matmul(opa, opb, out=out)


def torch_matmul(w):
    dtype = torch.float32 if w["dtype"] == "float32" else torch.float64
    g = torch.Generator().manual_seed(0)
    a = torch.randn((w["k"], w["m"]) if w["transA"] else (w["m"], w["k"]), generator=g, dtype=dtype)
    b = torch.randn((w["n"], w["k"]) if w["transB"] else (w["k"], w["n"]), generator=g, dtype=dtype)
    opa = a.t() if w["transA"] else a
    opb = b.t() if w["transB"] else b
    return lambda: torch.matmul(opa, opb)


def numpy_tiny_add(w):
    if w.get("backward"):
        return None  # NumPy has no autograd
    a = np.ones(w["size"], np.float32)
    b = np.ones(w["size"], np.float32)
    return lambda: a + b


def torch_tiny_add(w):
    a = torch.ones(w["size"], requires_grad=True)
    b = torch.ones(w["size"], requires_grad=True)
    if not w.get("backward"):
        return lambda: a + b
    g = torch.ones(w["size"])

    def step():
        (a * b).backward(g)
        a.grad = None
        b.grad = None

    return step


def synthetic(samples, features, classes):
    rng = np.random.default_rng(1)
    x = rng.random((samples, features), dtype=np.float32)
    y = rng.integers(0, classes, samples)
    return x, y


def numpy_epoch(w):
    """Hand-written forward and backward of Linear-ReLU-Linear (or one Linear) + softmax cross-entropy, SGD."""
    sizes = w["layers"]
    x_all, y_all = synthetic(w["samples"], sizes[0], sizes[-1])
    rng = np.random.default_rng(2)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append([(rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)).astype(np.float32),
                       np.zeros(fan_out, np.float32)])
    lr = np.float32(w["lr"])
    batch = w["batch"]

    def epoch():
        for start in range(0, w["samples"], batch):
            x = x_all[start:start + batch]
            y = y_all[start:start + batch]
            activations = [x]
            for i, (weight, bias) in enumerate(params):
                z = activations[-1] @ weight + bias
                activations.append(np.maximum(z, 0) if i < len(params) - 1 else z)
            logits = activations[-1]
            shifted = logits - logits.max(axis=1, keepdims=True)
            probs = np.exp(shifted)
            probs /= probs.sum(axis=1, keepdims=True)
            grad = probs
            grad[np.arange(len(y)), y] -= 1
            grad /= len(y)
            for i in range(len(params) - 1, -1, -1):
                weight, bias = params[i]
                grad_w = activations[i].T @ grad
                grad_b = grad.sum(axis=0)
                if i > 0:
                    grad = (grad @ weight.T) * (activations[i] > 0)
                weight -= lr * grad_w
                bias -= lr * grad_b

    return epoch


def torch_epoch(w):
    sizes = w["layers"]
    x_np, y_np = synthetic(w["samples"], sizes[0], sizes[-1])
    x_all = torch.from_numpy(x_np) if np is not None else torch.rand(w["samples"], sizes[0])
    y_all = torch.from_numpy(y_np) if np is not None else torch.randint(0, sizes[-1], (w["samples"],))
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers.append([(torch.randn(fan_in, fan_out) * (2 / fan_in) ** 0.5).requires_grad_(),
                       torch.zeros(fan_out, requires_grad=True)])
    lr = w["lr"]
    batch = w["batch"]

    def epoch():
        for start in range(0, w["samples"], batch):
            h = x_all[start:start + batch]
            y = y_all[start:start + batch]
            for i, (weight, bias) in enumerate(layers):
                h = h.matmul(weight) + bias
                if i < len(layers) - 1:
                    h = h.relu()
            loss = -h.log_softmax(dim=1)[torch.arange(len(y)), y].mean()
            loss.backward()
            with torch.no_grad():
                for weight, bias in layers:
                    weight -= lr * weight.grad
                    bias -= lr * bias.grad
                    weight.grad = None
                    bias.grad = None

    return epoch


builders = {
    ("numpy", "matmul"): numpy_matmul, ("torch", "matmul"): torch_matmul,
    ("numpy", "tinyAdd"): numpy_tiny_add, ("torch", "tinyAdd"): torch_tiny_add,
    ("numpy", "epoch"): numpy_epoch, ("torch", "epoch"): torch_epoch,
}

results = []
for workload in spec["workloads"]:
    for tool, module in (("numpy", np), ("torch", torch)):
        build = builders.get((tool, workload["kind"]))
        if module is None or build is None:
            continue
        if tool == "torch" and workload["kind"] == "epoch" and np is None:
            continue
        fn = build(workload)
        if fn is None:
            continue
        median, runs = measure(fn, workload["minRuns"], workload["minTimeMs"], workload["warmup"])
        results.append({"id": workload["id"], "tool": tool, "medianMs": median, "runs": runs})

# ru_maxrss is in KiB on Linux.
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"python": sys.version.split()[0], "executable": sys.executable, "tools": tools,
                  "env": {var: os.environ[var] for var in THREAD_VARS if var in os.environ},
                  "results": results, "peakRssMb": peak_mb}))
