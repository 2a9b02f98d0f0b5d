import { describe, expect, it } from "vitest";
import { Tensor, tensor } from "@tapegrad/autograd";
import { nn, optim } from "@tapegrad/nn";

/**
 * Produced by scripts/optim-reference.py with PyTorch 1.13.0a0 (float64): the parameter after each of 3 steps
 * on p0 = [0.5, -1, 2] with gradient g = 2·a·p + b, a = [1, 0.5, 2], b = [0.3, -0.2, 0.1].
 */
const TORCH = {
  sgd: [[0.37, -0.88, 1.19], [0.26599999999999996, -0.772, 0.704], [0.18279999999999996, -0.6748000000000001, 0.41239999999999993]],
  sgdMomentum: [[0.37, -0.88, 1.19], [0.149, -0.6639999999999999, -0.024999999999999977], [-0.10970000000000003, -0.38319999999999993, -1.1184999999999998]],
  sgdDampening: [[0.37, -0.88, 1.19], [0.18019999999999997, -0.6964, 0.12079999999999987], [-0.03684800000000004, -0.468412, -0.8823040000000001]],
  sgdNesterov: [[0.25299999999999995, -0.772, 0.461], [-0.005440000000000071, -0.49012, -0.5644600000000001], [-0.22042880000000006, -0.19278519999999993, -0.9024244000000001]],
  sgdWeightDecay: [[0.365, -0.87, 1.1700000000000002], [0.19084999999999996, -0.6893, 0.26530000000000004], [0.03369649999999996, -0.503127, -0.30582300000000007]],
  sgdMaximize: [[0.625, -1.11, 2.79], [0.88625, -1.3289000000000002, 4.5991], [1.3197625, -1.6655110000000002, 8.030939]],
  adam: [[0.40000000076923076, -0.9000000008333333, 1.9000000001234567], [0.3007783993719784, -0.8003208388748606, 1.8001639692467732], [0.20309707191932047, -0.7012228217637305, 1.7006137800005854]],
  adamWeightDecay: [[0.4000000007407407, -0.9000000007692308, 1.900000000120482], [0.300849552846618, -0.8003563138963633, 1.8001802926628168], [0.20339489147575818, -0.7013578437903635, 1.7006732390710986]],
  adamAmsgrad: [[3.846153784348161e-09, -0.5000000041666666, 1.500000000617284], [-0.36444836728850444, -0.02191977304163767, 0.9842407066374093], [-0.5323148788528487, 0.34905486468325864, 0.5149680554845677]],
  adamNoAmsgrad: [[3.846153784348161e-09, -0.5000000041666666, 1.500000000617284], [-0.48997458587103015, 0.021542064410480233, 0.9842407066374093], [-0.6527403480677694, 0.5660871142628151, 0.4360359873408165]],
  adamw: [[0.39950000076923076, -0.8990000008333333, 1.8980000001234567], [0.2998849638786901, -0.7984261765348211, 1.7962700016182005], [0.20192154367971446, -0.6985418925790824, 1.694934632828453]],
  adamwStrong: [[0.37500000076923073, -0.8500000008333333, 1.8000000001234566], [0.25370694241896147, -0.7057960416429113, 1.6086419249056891], [0.14289020809644054, -0.5684368634057879, 1.424751071810619]],
  stepLR: [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.0125, 0.00625],
  cosine: [0.1, 0.09140576474687263, 0.06890576474687263, 0.04109423525312736, 0.018594235253127367, 0.01, 0.018594235253127367, 0.04109423525312739, 0.06890576474687267, 0.09140576474687269, 0.10000000000000006, 0.09140576474687272, 0.06890576474687268],
};

const A = [1, 0.5, 2];
const B = [0.3, -0.2, 0.1];
const P0 = [0.5, -1, 2];
const gradAt = (p: readonly number[]): number[] => p.map((v, i) => 2 * A[i] * v + B[i]);

/** Runs 3 steps of `make` on the test problem, returning the parameter after each. */
function run(make: (ps: Tensor[]) => optim.Optimizer, steps = 3): number[][] {
  const p = tensor(P0, { dtype: "float64", requiresGrad: true });
  const opt = make([p]);
  const out: number[][] = [];
  for (let t = 0; t < steps; t++) {
    p.grad = tensor(gradAt(Array.from(p.data)), { dtype: "float64" });
    opt.step();
    out.push(Array.from(p.data));
  }
  return out;
}

function expectClose(actual: number[][], expected: number[][], tol = 1e-12): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((row, t) => row.forEach((v, i) => {
    if (Math.abs(v - expected[t][i]) > tol * Math.max(1, Math.abs(expected[t][i]))) {
      throw new Error(`step ${t + 1}, element ${i}: got ${v}, expected ${expected[t][i]}`);
    }
  }));
}

// ---------------------------------------------------------------- independent references (torch.optim docs)

function sgdReference(o: { lr: number; momentum?: number; dampening?: number; nesterov?: boolean; weightDecay?: number; maximize?: boolean }): number[][] {
  const { lr, momentum: mu = 0, dampening: tau = 0, nesterov = false, weightDecay: wd = 0, maximize = false } = o;
  const p = [...P0];
  let buf: number[] | null = null;
  const out: number[][] = [];
  for (let t = 1; t <= 3; t++) {
    let g = gradAt(p).map((v) => (maximize ? -v : v));
    if (wd !== 0) g = g.map((v, i) => v + wd * p[i]);
    if (mu !== 0) {
      buf = buf === null ? [...g] : buf.map((b, i) => mu * b + (1 - tau) * g[i]);
      g = nesterov ? g.map((v, i) => v + mu * buf![i]) : [...buf];
    }
    for (let i = 0; i < 3; i++) p[i] -= lr * g[i];
    out.push([...p]);
  }
  return out;
}

function adamReference(o: { lr: number; betas?: [number, number]; eps?: number; weightDecay?: number; amsgrad?: boolean; decoupled?: boolean }): number[][] {
  const { lr, betas: [b1, b2] = [0.9, 0.999], eps = 1e-8, weightDecay: wd = 0, amsgrad = false, decoupled = false } = o;
  const p = [...P0];
  const m = [0, 0, 0], v = [0, 0, 0], vmax = [0, 0, 0];
  const out: number[][] = [];
  for (let t = 1; t <= 3; t++) {
    let g = gradAt(p);
    if (decoupled) for (let i = 0; i < 3; i++) p[i] -= lr * wd * p[i];
    else if (wd !== 0) g = g.map((gi, i) => gi + wd * p[i]);
    for (let i = 0; i < 3; i++) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mHat = m[i] / (1 - b1 ** t);
      vmax[i] = Math.max(vmax[i], v[i]);
      const vHat = (amsgrad ? vmax[i] : v[i]) / (1 - b2 ** t);
      p[i] -= (lr * mHat) / (Math.sqrt(vHat) + eps);
    }
    out.push([...p]);
  }
  return out;
}

describe("SGD", () => {
  const cases = [
    ["sgd", { lr: 0.1 }],
    ["sgdMomentum", { lr: 0.1, momentum: 0.9 }],
    ["sgdDampening", { lr: 0.1, momentum: 0.9, dampening: 0.3 }],
    ["sgdNesterov", { lr: 0.1, momentum: 0.9, nesterov: true }],
    ["sgdWeightDecay", { lr: 0.1, momentum: 0.5, weightDecay: 0.1 }],
    ["sgdMaximize", { lr: 0.1, momentum: 0.9, weightDecay: 0.1, maximize: true }],
  ] as const;
  for (const [name, opts] of cases) {
    it(`${name}: matches the doc equations and PyTorch over 3 steps (${JSON.stringify(opts)})`, () => {
      const got = run((ps) => new optim.SGD(ps, opts));
      expectClose(got, sgdReference(opts), 1e-15);
      expectClose(got, TORCH[name], 1e-14);
    });
  }

  it("first momentum step uses buf = g with no dampening", () => {
    const got = run((ps) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9, dampening: 0.9 }), 1);
    expectClose(got, [P0.map((v, i) => v - 0.1 * gradAt(P0)[i])]);
  });

  it("validates hyperparameters", () => {
    const p = [tensor([1], { requiresGrad: true })];
    expect(() => new optim.SGD(p, { lr: -1 })).toThrow("SGD: invalid learning rate -1");
    expect(() => new optim.SGD(p, { lr: 0.1, nesterov: true })).toThrow("SGD: nesterov momentum requires a momentum > 0 and zero dampening");
    expect(() => new optim.SGD([], { lr: 0.1 })).toThrow("SGD: got an empty parameter list");
  });
});

describe("Adam / AdamW", () => {
  it("Adam: bias correction over 3 steps matches the equations and PyTorch", () => {
    const got = run((ps) => new optim.Adam(ps, { lr: 0.1 }));
    expectClose(got, adamReference({ lr: 0.1 }));
    expectClose(got, TORCH.adam);
  });

  it("Adam with L2 weight decay and custom betas", () => {
    const got = run((ps) => new optim.Adam(ps, { lr: 0.1, betas: [0.8, 0.9], weightDecay: 0.1 }));
    expectClose(got, adamReference({ lr: 0.1, betas: [0.8, 0.9], weightDecay: 0.1 }));
    expectClose(got, TORCH.adamWeightDecay);
  });

  it("amsgrad keeps the running maximum of v (and differs from plain Adam when v shrinks)", () => {
    const got = run((ps) => new optim.Adam(ps, { lr: 0.5, betas: [0.9, 0.5], amsgrad: true }));
    expectClose(got, adamReference({ lr: 0.5, betas: [0.9, 0.5], amsgrad: true }));
    expectClose(got, TORCH.adamAmsgrad);
    expectClose(run((ps) => new optim.Adam(ps, { lr: 0.5, betas: [0.9, 0.5] })), TORCH.adamNoAmsgrad);
    expect(TORCH.adamAmsgrad[1][0]).not.toBeCloseTo(TORCH.adamNoAmsgrad[1][0], 3);
  });

  it("AdamW: decoupled decay p -= lr·wd·p, default weightDecay 0.01", () => {
    const got = run((ps) => new optim.AdamW(ps, { lr: 0.1 }));
    expectClose(got, adamReference({ lr: 0.1, weightDecay: 0.01, decoupled: true }));
    expectClose(got, TORCH.adamw);
    const strong = run((ps) => new optim.AdamW(ps, { lr: 0.1, betas: [0.9, 0.5], weightDecay: 0.5, amsgrad: true }));
    expectClose(strong, adamReference({ lr: 0.1, betas: [0.9, 0.5], weightDecay: 0.5, amsgrad: true, decoupled: true }));
    expectClose(strong, TORCH.adamwStrong);
  });

  it("validates betas", () => {
    const p = [tensor([1], { requiresGrad: true })];
    expect(() => new optim.Adam(p, { betas: [1, 0.999] })).toThrow("Adam: invalid beta1 1");
    expect(() => new optim.AdamW(p, { betas: [0.9, -0.1] })).toThrow("AdamW: invalid beta2 -0.1");
  });
});

describe("Optimizer behaviour", () => {
  it("zeroGrad sets grads to null; parameters without a grad are skipped", () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const b = tensor([3], { requiresGrad: true });
    const opt = new optim.SGD([a, b], { lr: 0.5 });
    a.grad = tensor([1, 1]);
    opt.step();
    expect(Array.from(a.data)).toEqual([0.5, 1.5]);
    expect(Array.from(b.data)).toEqual([3]);
    opt.zeroGrad();
    expect(a.grad).toBeNull();
  });

  it("float32 parameters are updated in place", () => {
    const lin = new nn.Linear(2, 1);
    const data = lin.weight.data;
    const before = Array.from(data);
    lin.weight.grad = tensor([[1, -1]]);
    new optim.SGD(lin.parameters(), { lr: 0.25 }).step();
    expect(lin.weight.data).toBe(data);
    expect(Array.from(data)).toEqual([Math.fround(before[0] - 0.25), Math.fround(before[1] + 0.25)]);
  });

  it("param groups have their own lr; opt.lr gets the first and sets all", () => {
    const a = tensor([1], { requiresGrad: true });
    const b = tensor([1], { requiresGrad: true });
    const opt = new optim.SGD([{ params: [a] }, { params: [b], lr: 0.5 }], { lr: 0.1 });
    a.grad = tensor([1]);
    b.grad = tensor([1]);
    opt.step();
    expect(a.data[0]).toBeCloseTo(0.9, 6);
    expect(b.data[0]).toBeCloseTo(0.5, 6);
    expect(opt.lr).toBe(0.1);
    opt.lr = 0.01;
    expect(opt.paramGroups.map((g) => g.options.lr)).toEqual([0.01, 0.01]);
  });

  it("stateDict / loadStateDict resumes Adam exactly", () => {
    const full = run((ps) => new optim.Adam(ps, { lr: 0.1 }));
    const p = tensor(P0, { dtype: "float64", requiresGrad: true });
    const first = new optim.Adam([p], { lr: 0.1 });
    p.grad = tensor(gradAt(Array.from(p.data)), { dtype: "float64" });
    first.step();
    const saved = first.stateDict();
    expect(saved.state[0].step).toBe(1);
    const second = new optim.Adam([p], { lr: 0.7 });
    second.loadStateDict(saved);
    expect(second.lr).toBe(0.1);
    for (let t = 1; t < 3; t++) {
      p.grad = tensor(gradAt(Array.from(p.data)), { dtype: "float64" });
      second.step();
    }
    expectClose([Array.from(p.data)], [full[2]], 0);
  });
});

describe("LR schedulers", () => {
  const lrs = (make: (o: optim.Optimizer) => optim.LRScheduler, steps = 12): number[] => {
    const opt = new optim.SGD([tensor([0], { requiresGrad: true })], { lr: 0.1 });
    const sched = make(opt);
    const out = [sched.getLastLr()[0]];
    for (let i = 0; i < steps; i++) {
      opt.step();
      sched.step();
      out.push(sched.getLastLr()[0]);
      expect(opt.lr).toBe(out[out.length - 1]);
    }
    return out;
  };

  it("StepLR multiplies by gamma every stepSize epochs, as PyTorch", () => {
    expectClose([lrs((o) => new optim.StepLR(o, { stepSize: 3, gamma: 0.5 }))], [TORCH.stepLR], 1e-15);
    expect(new optim.StepLR(new optim.SGD([tensor([0], { requiresGrad: true })], { lr: 1 }), { stepSize: 2 }).gamma).toBe(0.1);
  });

  it("CosineAnnealingLR follows PyTorch's recursive form, including past tMax", () => {
    const got = lrs((o) => new optim.CosineAnnealingLR(o, { tMax: 5, etaMin: 0.01 }));
    expectClose([got], [TORCH.cosine], 1e-14);
    // the closed form within the first period
    for (let t = 0; t <= 5; t++) expect(got[t]).toBeCloseTo(0.01 + (0.09 * (1 + Math.cos((Math.PI * t) / 5))) / 2, 14);
  });
});
