#!/usr/bin/env bash
# Smoke run of every example on real Fashion-MNIST (half the training set, 2 epochs; the cnn on 10,000
# images for 1 epoch), each checked against an accuracy floor read from its result.json; then a run stopped
# after 1 epoch and resumed must end with the same model file as the uninterrupted one, and bad input must
# give its exit code (2 bad options, 3 a failed check). About 105 s on 2 cores. Without the real data
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

# LeNet's sigmoids sit at chance for its first ~300 steps (d2l's first epoch too): 2 epochs of 235 steps;
# on the sample (94 steps) it only has to run
run lenet --epochs 2 --batch-size 128 "${SMALL[@]}"
check "$OUT/lenet" lenet 0.3 0 'require("fs").existsSync(r.outDir + "/filters.png") && require("fs").existsSync(r.outDir + "/feature-maps.png")'

run cnn --epochs 1 --batchnorm --dropout 0.3 --limit-train 10000 --limit-test 2000 --no-progress
check "$OUT/cnn" cnn 0.7 0.65 'r.batchnorm && r.dropout === 0.3 && require("fs").existsSync(r.outDir + "/feature-maps.png")'

# --resume: 1 epoch, then resumed to 2, gives the 2-epoch run's model.safetensors byte for byte
echo "smoke: pnpm example mlp --epochs 1 ${SMALL[*]} --out $OUT/resumed, then --resume $OUT/resumed --epochs 2"
{ pnpm -s example mlp --epochs 1 "${SMALL[@]}" --out "$OUT/resumed" && pnpm -s example mlp --resume "$OUT/resumed" --epochs 2 --no-progress; } \
  > "$OUT/resumed.log" 2>&1 || { cat "$OUT/resumed.log"; exit 1; }
cmp "$OUT/mlp/model.safetensors" "$OUT/resumed/model.safetensors" || { echo "smoke: resumed mlp differs from the uninterrupted run"; exit 1; }
echo "smoke: mlp resumed after epoch 1 ends with the uninterrupted run's weights"

# expect_exit <code> <what> <args...>: the example must fail with that exit code
expect_exit() {
  local code=$1 what=$2
  shift 2
  local got=0
  pnpm -s example "$@" > "$OUT/exit.log" 2>&1 || got=$?
  if [ "$got" != "$code" ]; then echo "smoke: $what: exit $got, expected $code"; cat "$OUT/exit.log"; exit 1; fi
  echo "smoke: $what exits $code: $(grep -m1 "^$1: " "$OUT/exit.log" | cut -c1-120)"
}
expect_exit 2 "mlp --epochs -1" mlp --epochs -1
expect_exit 3 "gradient-check --eps 1" gradient-check --eps 1 --hidden 3 --no-progress --out "$OUT/gc-eps"
expect_exit 1 "hardest with a missing checkpoint" hardest --checkpoint "$OUT/none.safetensors"

echo "smoke: all examples passed in $((SECONDS - start)) s"
