#!/usr/bin/env bash
# The CUDA target on a machine with an NVIDIA GPU, in a few minutes:
#   1. builds (with the CUDA toolkit's ptxas when present, for cubins);
#   2. the GPU end-to-end tests: the e2e suite with VMOE_E2E_DEVICE=cuda
#      (logits against the reference, routing statistics exactly), the
#      ptxas lit tests, the runtime's CUDA tests;
#   3. the bundled model on GPU against the CPU backend: every logit, the
#      top-1 classes and the routing line, vanilla and BPR;
#   4. benchmarks: the bundled model and a ViT-S/32-sized V-MoE, images/s and
#      achieved TFLOP/s against the GPU's FP32 peak, against PyTorch on the
#      same GPU when torch with CUDA is installed.
# Prints a Markdown table and writes it to $OUT_DIR/results.md (default
# build-gpu/gpu-check) for docs/cuda.md.
#
# Usage: scripts/gpu-check.sh [--quick]   (env: VMOE_BUILD_DIR, OUT_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
build=${VMOE_BUILD_DIR:-build-gpu}
out=${OUT_DIR:-$build/gpu-check}
py=/usr/bin/python3
status=0

say() { printf '\n== %s\n' "$*"; }

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU here (nvidia-smi -L failed); nothing to check" >&2
  exit 2
fi
gpu=$(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader | head -1)
name=$(echo "$gpu" | cut -d, -f1 | xargs)
cc=$(echo "$gpu" | cut -d, -f2 | tr -d ' .')
say "GPU: $gpu (sm_$cc)"

# ---- 1. build ----------------------------------------------------------------
say "build ($build)"
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
jobs=$(nproc)
if [ ! -f "$build/CMakeCache.txt" ]; then
  if command -v clang++-22 >/dev/null && [ -d /usr/lib/llvm-22/lib/cmake/mlir ]; then
    cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
      -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir >/dev/null
  else
    VMOE_BUILD_DIR=$build scripts/setup.sh
  fi
fi
cmake --build "$build" -j "$jobs"
mkdir -p "$out"
bin=$build/bin
sms="80,90"
case "$cc" in 80|90) ;; *) sms="80,90,$cc" ;; esac

# ---- 2. GPU end-to-end tests ---------------------------------------------------
say "GPU end-to-end tests (reference logits, routing exactly)"
filter='DefaultBpr/EndToEnd.*:EndToEndVariants.*:EndToEndBatch.*:BundledModel.*'
[ $quick = 1 ] && filter='DefaultBpr/EndToEnd.*:BundledModel.*'
if VMOE_E2E_DEVICE=cuda "$build/tests/e2e/vmoe_e2e_test" --gtest_filter="$filter" \
    > "$out/e2e.log" 2>&1; then
  e2e="pass"
else
  e2e="FAIL"; status=1
fi
tail -3 "$out/e2e.log"
(cd "$build" && ctest -R 'ptx|Cuda|cuda' --output-on-failure) > "$out/ctest.log" 2>&1 \
  && ctests="pass" || { ctests="FAIL"; status=1; }
echo "ctest (PTX, ptxas, runtime CUDA tests): $ctests"

# ---- 3. bundled model: GPU against CPU ----------------------------------------
say "bundled model: GPU against the CPU backend"
model=models/fashion-mnist
"$bin/vmoe-compile" $model/config.json --weights $model/weights.npz \
  --batch 8 --max-capacity-factor 2 -o "$out/fm-cpu.vmoe" >/dev/null
"$bin/vmoe-compile" $model/config.json --weights $model/weights.npz \
  --batch 8 --max-capacity-factor 2 --target=cuda --sm=$sms -o "$out/fm-cuda.vmoe"
$py - "$model/samples.npz" "$out/samples.npy" <<'EOF'
import sys, numpy as np
z = np.load(sys.argv[1])
x = z["inputs"]
np.save(sys.argv[2], x.astype(np.float32) if x.dtype != np.uint8 else x)
EOF
compare_rows=""
for bpr in on off; do
  for cf in 2.0 0.5; do
    common=(--input "$out/samples.npy" --capacity-factor $cf --bpr $bpr --show 0)
    "$bin/vmoe-run" "$out/fm-cpu.vmoe" "${common[@]}" --output "$out/cpu.npy" \
      > "$out/cpu.txt"
    "$bin/vmoe-run" "$out/fm-cuda.vmoe" "${common[@]}" --device cuda \
      --output "$out/gpu.npy" > "$out/gpu.txt"
    row=$($py - "$out/cpu.npy" "$out/gpu.npy" "$out/cpu.txt" "$out/gpu.txt" <<'EOF'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
def routing(path):  # vmoe-run's per-layer routing lines
    return [l for l in open(path) if l.startswith("MoE layer")]
cpu_routing, gpu_routing = routing(sys.argv[3]), routing(sys.argv[4])
same_routing = len(cpu_routing) > 0 and cpu_routing == gpu_routing
top1 = float((a.argmax(1) == b.argmax(1)).mean())
print(f"{np.abs(a - b).max():.2e} | {100 * top1:.1f}% | {'same' if same_routing else 'DIFFERENT'}")
EOF
)
    echo "cf $cf BPR $bpr: max |logit diff| | top-1 agreement | routing: $row"
    compare_rows+="| $cf | $bpr | $row |"$'\n'
    case "$row" in *DIFFERENT*) status=1 ;; esac
  done
done

# ---- 4. benchmarks ---------------------------------------------------------------
say "benchmarks"
# FP32 (CUDA core) peak TFLOP/s: the kernels use FP32 arithmetic.
peak=$(case "$name" in
  *H200*|*H100*SXM*|*"H100 80GB HBM3"*) echo 67 ;; *H100*) echo 51 ;;
  *A100*) echo 19.5 ;; *L40S*) echo 91.6 ;; *A10*) echo 31.2 ;;
  *4090*) echo 82.6 ;; *) echo 0 ;; esac)
bench_rows=""
bench() { # label, module, batch, config json
  local label=$1 module=$2 batch=$3 config=$4 repeat=50
  [ $quick = 1 ] && repeat=10
  local line ms
  line=$("$bin/vmoe-run" "$module" --device cuda --repeat $repeat --quiet | grep '^time:')
  ms=$(echo "$line" | sed -E 's/.*median ([0-9.]+) ms.*/\1/')
  bench_rows+=$($py - "$config" "$batch" "$ms" "$peak" "$label" <<'EOF'
import json, sys
cfg = json.load(open(sys.argv[1])) if sys.argv[1].endswith(".json") else json.loads(sys.argv[1])
batch, ms, peak, label = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
D, C, p = cfg["hidden_size"], cfg.get("channels", 3), cfg["patch_size"]
if isinstance(p, list):
    p = p[0]
h, w = cfg["image_size"]
M, L = cfg["transformer"]["mlp_dim"], cfg["transformer"]["num_layers"]
moe = (cfg.get("encoder") or {}).get("moe") or {}
T = (h // p) * (w // p) + (1 if cfg.get("classifier", "token") == "token" else 0)
moe_layers = set(moe.get("layers", []))
E = moe.get("num_experts", 1)
k = (moe.get("router") or {}).get("num_selected_experts", 1)
f = 2 * (T - 1) * p * p * C * D
for l in range(L):
    f += 2 * T * D * 3 * D + 2 * 2 * T * T * D + 2 * T * D * D
    f += (2 * T * D * E + k * 2 * 2 * T * D * M) if l in moe_layers else 2 * 2 * T * D * M
f += 2 * D * cfg.get("num_classes", 10)
tflops = f * batch / (ms * 1e-3) / 1e12
share = f"{100 * tflops / peak:.2f}%" if peak else "n/a"
print(f"| {label} | {batch} | {ms:.3f} | {batch / (ms * 1e-3):.0f} | {tflops:.3f} | {share} |")
EOF
)$'\n'
}
bench "bundled model (Fashion-MNIST)" "$out/fm-cuda.vmoe" 8 $model/config.json
s32cfg=$("$bin/vmoe-compile" --preset vmoe-s32-e8-last2 --batch 8 --emit=config)
"$bin/vmoe-compile" --preset vmoe-s32-e8-last2 --random-weights=1 --batch 8 \
  --target=cuda --sm=$sms -o "$out/s32-cuda.vmoe" >/dev/null
bench "V-MoE S/32, E=8, last 2" "$out/s32-cuda.vmoe" 8 "$s32cfg"

torch_row="not run (no PyTorch with CUDA)"
if $py -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  torch_row=$($py - "$model" <<'EOF'
import sys, time, torch
sys.path.insert(0, "python")
import vmoe_torch as vt
cfg = vt.load_config(sys.argv[1] + "/config.json")
params = {k: v.cuda() for k, v in vt.load_npz(sys.argv[1] + "/weights.npz").items()}
x = torch.rand(8, 28, 28, 1, device="cuda")
with torch.no_grad():
    for _ in range(5):
        vt.forward(params, x, cfg)
    torch.cuda.synchronize()
    t = time.perf_counter(); n = 50
    for _ in range(n):
        vt.forward(params, x, cfg)
    torch.cuda.synchronize()
ms = (time.perf_counter() - t) / n * 1e3
print(f"PyTorch eager, bundled model, batch 8: {ms:.3f} ms ({8 / ms * 1e3:.0f} images/s)")
EOF
) || torch_row="PyTorch run failed"
fi

# ---- report ------------------------------------------------------------------------
{
  echo "### $(date -u +%Y-%m-%d): $name (sm_$cc), driver $(echo "$gpu" | cut -d, -f3 | xargs)"
  echo
  echo "GPU end-to-end tests: $e2e; PTX/ptxas/runtime CUDA tests: $ctests."
  echo
  echo "| capacity factor | BPR | max abs logit diff (GPU vs CPU) | top-1 agreement | routing |"
  echo "|---|---|---|---|---|"
  printf '%s' "$compare_rows"
  echo
  echo "| model | batch | ms / batch | images/s | TFLOP/s | of FP32 peak ($peak) |"
  echo "|---|---|---|---|---|---|"
  printf '%s' "$bench_rows"
  echo
  echo "$torch_row"
} | tee "$out/results.md"
exit $status
