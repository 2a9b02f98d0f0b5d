"""PyTorch's times on issue 20's convolutional networks, the reference for bench/conv-kernels.ts and the cnn
and LeNet epochs: each layer's forward and backward kernels alone (float32, the shapes bench/conv-kernels.ts
times), and one SGD training epoch of each whole network on synthetic 60k × 1 × 28 × 28 data.

    /usr/bin/python3 bench/cnn-reference.py [--threads 1,2] [--no-epochs] [--no-layers] [--epochs N] [--samples N] [--default-malloc]

Each thread setting runs in a child process of its own, since OpenMP reads its environment once: the child
gets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and torch.set_num_threads(n), and above one
thread OMP_WAIT_POLICY=PASSIVE (spinning idle OpenMP threads oversubscribe a 2-core machine; see
bench/README.md). Unless --default-malloc, the child also gets MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ at 2^31 − 1, so that glibc keeps freed tensors' memory for reuse instead of
unmapping it: on the bench VM, memory fresh from the kernel costs about 30 µs per page at first touch, which
made one forward of the cnn's first convolution take 50–140 ms of CPU instead of 1.4 ms (bench/NOTES-conv.md,
"PyTorch and fresh memory"). The setting only makes PyTorch faster. Prints one JSON object: {"torch": version, "settings": {"1": {...}, "2": {...}}} with, per
setting, "layers" (median wall milliseconds per call), "layers_cpu" (median CPU milliseconds per call, this
process's user + system time over all its threads: the steadier number on a busy machine) and "epochs"
(seconds per epoch, the median of the timed epochs after 20 untimed warm-up steps).
"""
import argparse
import json
import os
import subprocess
import sys
import time


def child(threads, do_epochs, epochs, do_layers=True, samples=60000):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    aten = torch.ops.aten

    layers = {}
    layers_cpu = {}

    def median_ms(fn, min_runs=7, min_time=0.4, warmup=3):
        """Median wall milliseconds per call; the median CPU milliseconds (this process, all threads) go
        to layers_cpu under the key the caller stores the wall time at (see timed)."""
        for _ in range(warmup):
            fn()
        times, cpu = [], []
        start = time.perf_counter()
        while len(times) < min_runs or time.perf_counter() - start < min_time:
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        times.sort()
        cpu.sort()
        median_ms.last_cpu = cpu[len(cpu) // 2] * 1e3
        return times[len(times) // 2] * 1e3

    class Timed(dict):
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            if not key.endswith(" flops"):
                layers_cpu[key] = median_ms.last_cpu

    layers = Timed()

    def conv_layer(name, shape, weight_shape, padding, input_grad):
        x = torch.randn(*shape)
        w = torch.randn(*weight_shape)
        b = torch.randn(weight_shape[0])
        y = F.conv2d(x, w, b, padding=padding)
        gy = torch.randn_like(y)
        args = ([weight_shape[0]], [1, 1], [padding, padding], [1, 1], False, [0, 0], 1)
        layers[f"{name} forward"] = median_ms(lambda: F.conv2d(x, w, b, padding=padding))
        if input_grad:
            layers[f"{name} backwardInput"] = median_ms(lambda: aten.convolution_backward(gy, x, w, *args, [True, False, False]))
        layers[f"{name} backwardWeight+Bias"] = median_ms(lambda: aten.convolution_backward(gy, x, w, *args, [False, True, True]))
        flops = 2 * y.numel() * weight_shape[1] * weight_shape[2] * weight_shape[3]
        layers[f"{name} flops"] = flops

    def max_pool_layer(name, shape):
        x = torch.randn(*shape)
        y, idx = F.max_pool2d(x, 2, return_indices=True)
        gy = torch.randn_like(y)
        layers[f"{name} forward"] = median_ms(lambda: F.max_pool2d(x, 2, return_indices=True))
        layers[f"{name} backward"] = median_ms(lambda: aten.max_pool2d_with_indices_backward(gy, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx))

    def avg_pool_layer(name, shape):
        x = torch.randn(*shape)
        y = F.avg_pool2d(x, 2)
        gy = torch.randn_like(y)
        layers[f"{name} forward"] = median_ms(lambda: F.avg_pool2d(x, 2))
        layers[f"{name} backward"] = median_ms(lambda: aten.avg_pool2d_backward(gy, x, [2, 2], [2, 2], [0, 0], False, True, None))

    def batch_norm_layer(name, shape):
        c = shape[1]
        x, w, b = torch.randn(*shape), torch.randn(c), torch.randn(c)
        rm, rv = torch.zeros(c), torch.ones(c)
        out, mean, invstd = aten.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)
        gy = torch.randn_like(out)
        layers[f"{name} forward (training)"] = median_ms(lambda: aten.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5))
        layers[f"{name} backward"] = median_ms(lambda: aten.native_batch_norm_backward(gy, x, w, rm, rv, mean, invstd, True, 1e-5, [True, True, True]))

    if do_layers:
        with torch.no_grad():
            conv_layer("cnn conv1 1→32 28×28 b128", (128, 1, 28, 28), (32, 1, 3, 3), 1, False)
            max_pool_layer("cnn maxpool1 32×28×28 b128", (128, 32, 28, 28))
            conv_layer("cnn conv2 32→64 14×14 b128", (128, 32, 14, 14), (64, 32, 3, 3), 1, True)
            max_pool_layer("cnn maxpool2 64×14×14 b128", (128, 64, 14, 14))
            batch_norm_layer("cnn batchnorm 32×28×28 b128", (128, 32, 28, 28))
            batch_norm_layer("cnn batchnorm 64×14×14 b128", (128, 64, 14, 14))
            conv_layer("lenet conv1 1→6 5×5 28×28 b256", (256, 1, 28, 28), (6, 1, 5, 5), 2, False)
            avg_pool_layer("lenet avgpool1 6×28×28 b256", (256, 6, 28, 28))
            conv_layer("lenet conv2 6→16 5×5 14×14 b256", (256, 6, 14, 14), (16, 6, 5, 5), 0, True)
            avg_pool_layer("lenet avgpool2 16×10×10 b256", (256, 16, 10, 10))

    result = {"threads": threads, "layers": dict(layers), "layers_cpu": layers_cpu}
    if do_epochs:
        # synthetic Fashion-MNIST-sized data: the arithmetic, not the accuracy, is what is timed
        x_all = torch.rand(samples, 1, 28, 28)
        y_all = torch.randint(0, 10, (samples,))

        def cnn():
            return nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))

        def lenet():
            # d2l's LeNet-5 with Xavier initialisation
            net = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2),
                nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2),
                nn.Flatten(), nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))
            for m in net:
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    nn.init.xavier_uniform_(m.weight)
            return net

        def epoch_seconds(make, batch, lr):
            net = make()
            opt = torch.optim.SGD(net.parameters(), lr=lr)

            def step(idx):
                xb, yb = x_all[idx], y_all[idx]
                opt.zero_grad()
                F.cross_entropy(net(xb), yb).backward()
                opt.step()

            perm = torch.randperm(samples)
            for i in range(20):  # warm-up steps
                step(perm[i * batch:(i + 1) * batch])
            times = []
            for _ in range(epochs):
                perm = torch.randperm(samples)
                t0 = time.perf_counter()
                for i in range(0, samples, batch):
                    step(perm[i:i + batch])
                times.append(time.perf_counter() - t0)
            times.sort()
            return times[len(times) // 2]

        result["epochs"] = {"cnn b128 SGD": epoch_seconds(cnn, 128, 0.05), "lenet b256 SGD lr 0.9": epoch_seconds(lenet, 256, 0.9)}
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--no-epochs", action="store_true")
    parser.add_argument("--no-layers", action="store_true", help="time the epochs only")
    parser.add_argument("--samples", type=int, default=60000, help="training samples per epoch")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per network (median)")
    parser.add_argument("--default-malloc", action="store_true", help="leave glibc's mmap and trim thresholds as they are")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, not args.no_epochs, args.epochs, not args.no_layers, args.samples)
        return
    import torch
    settings = {}
    for n in [int(t) for t in args.threads.split(",")]:
        env = dict(os.environ, OMP_NUM_THREADS=str(n), OPENBLAS_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
        if n > 1:
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if not args.default_malloc:
            env.update(MALLOC_MMAP_THRESHOLD_="2147483647", MALLOC_TRIM_THRESHOLD_="2147483647")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), "--epochs", str(args.epochs)]
        cmd += ["--samples", str(args.samples)] + (["--no-layers"] if args.no_layers else [])
        if args.no_epochs:
            cmd.append("--no-epochs")
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        settings[str(n)] = json.loads(out.strip().splitlines()[-1])
    print(json.dumps({"torch": torch.__version__, "malloc": "default" if args.default_malloc else "heap (mmap and trim thresholds 2^31 - 1)",
                      "settings": settings}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
