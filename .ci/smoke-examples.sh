#!/usr/bin/env bash
# Smoke run of every example on real Fashion-MNIST (half the training set, 2 epochs), each checked against an
# accuracy floor read from its result.json. About 40 s on 2 cores. Without the real data
# (/usr/share/datasets/fashion-mnist, $TAPEGRAD_DATA or the cache) the examples fall back to the
# embedded sample, and the floors drop to what a model trained on it reaches.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="$(mktemp -d "${TMPDIR:-/tmp}/tapegrad-smoke.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT
SMALL=(--limit-train 30000 --limit-test 2000 --no-progress)

# check <name> <floor on full data> <floor on the sample> [extra JS condition on r]
check() {
  node -e '
    const [file, name, floor, sampleFloor, extra] = process.argv.slice(1);
    const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
    const min = r.isSample ? Number(sampleFloor) : Number(floor);
    const problems = [];
    if (r.testAccuracy !== undefined && !(r.testAccuracy >= min)) problems.push(`test accuracy ${r.testAccuracy} < ${min}`);
    if (extra && !new Function("r", `return (${extra});`)(r)) problems.push(`failed: ${extra}`);
    for (const f of r.files ?? []) if (!require("fs").existsSync(f)) problems.push(`missing ${f}`);
    const acc = r.testAccuracy === undefined ? "" : ` test accuracy ${r.testAccuracy.toFixed(4)} (floor ${min}${r.isSample ? ", embedded sample" : ""})`;
    if (problems.length) { console.error(`smoke: ${name} FAILED: ${problems.join("; ")}`); process.exit(1); }
    console.log(`smoke: ${name} ok:${acc} in ${r.seconds.toFixed(1)} s`);
  ' "$1/result.json" "$2" "$3" "$4" "${5:-}"
}

run() {
  local name=$1
  shift
  echo "smoke: pnpm example $name $*"
  pnpm -s example "$name" --out "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1 || { cat "$OUT/$name.log"; exit 1; }
  grep -q '^RESULT {' "$OUT/$name.log" || { echo "smoke: $name printed no RESULT line"; cat "$OUT/$name.log"; exit 1; }
}

start=$SECONDS
run mlp --epochs 2 "${SMALL[@]}"
check "$OUT/mlp" mlp 0.78 0.65 'require("fs").statSync(r.checkpoint).size > 400000'

run softmax-regression --epochs 2 "${SMALL[@]}"
check "$OUT/softmax-regression" softmax-regression 0.74 0.6 'require("fs").existsSync(r.outDir + "/predictions.png")'

run from-scratch --epochs 2 "${SMALL[@]}"
check "$OUT/from-scratch" from-scratch 0.76 0.6

run gradient-check
check "$OUT/gradient-check" gradient-check 0 0 'r.ok && r.maxMeanAbsDiff < 1e-8'

run hardest --checkpoint "$OUT/mlp/model.safetensors" --limit-test 2000 --no-progress
check "$OUT/hardest" hardest 0.78 0.65 'r.trainedHere === false && r.hardestLoss > r.easiestLoss'

echo "smoke: all examples passed in $((SECONDS - start)) s"
