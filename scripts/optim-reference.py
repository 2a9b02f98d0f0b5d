"""Reference values for test/optim.test.ts from PyTorch's own optimizers and schedulers.

Run: /usr/bin/python3 scripts/optim-reference.py  (needs torch; the test pastes this script's output)
Problem: p0 = [0.5, -1.0, 2.0] (float64); at every step the gradient is g = 2·a·p + b with
a = [1.0, 0.5, 2.0], b = [0.3, -0.2, 0.1] (the gradient of Σ a·p² + b·p); 3 steps per configuration.
"""
import json
import math

import torch

A = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
B = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
STEPS = 3


def run(make):
    p = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = make([p])
    out = []
    for _ in range(STEPS):
        p.grad = (2 * A * p.detach() + B).clone()
        opt.step()
        out.append(p.detach().tolist())
    return out


configs = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgdMomentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "sgdDampening": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.3),
    "sgdNesterov": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "sgdWeightDecay": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5, weight_decay=0.1),
    "sgdMaximize": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.1),
    "adamWeightDecay": lambda ps: torch.optim.Adam(ps, lr=0.1, betas=(0.8, 0.9), weight_decay=0.1),
    # betas[1] = 0.5 and a large lr let v shrink, so amsgrad's running maximum binds
    "adamAmsgrad": lambda ps: torch.optim.Adam(ps, lr=0.5, betas=(0.9, 0.5), amsgrad=True),
    "adamNoAmsgrad": lambda ps: torch.optim.Adam(ps, lr=0.5, betas=(0.9, 0.5)),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.1),
    "adamwStrong": lambda ps: torch.optim.AdamW(ps, lr=0.1, betas=(0.9, 0.5), weight_decay=0.5, amsgrad=True),
}

result = {name: run(make) for name, make in configs.items()}


def lrs(make_sched, steps=12):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make_sched(opt)
    out = [sched.get_last_lr()[0]]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
    return out


result["stepLR"] = lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5))
result["cosine"] = lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=0.01))
result["torch"] = torch.__version__
print(json.dumps(result, indent=1))
