#!/usr/bin/env bash
# The CUDA target on a machine with an NVIDIA GPU, in a few minutes:
#   1. builds (with the CUDA toolkit's ptxas when present, for cubins);
#   2. the GPU end-to-end tests: the e2e suite with VMOE_E2E_DEVICE=cuda
#      (logits against the reference, routing statistics exactly), the PTX
#      lit tests (ptxas included), the runtime's CUDA tests;
#   3. the bundled model on GPU against the CPU backend: every logit, the
#      top-1 classes and the per-layer routing lines, vanilla and BPR;
#   4. benchmarks: the bundled model and a ViT-S/32-sized V-MoE, images/s and
#      achieved TFLOP/s against the GPU's FP32 peak, against PyTorch on the
#      same GPU when torch with CUDA is installed;
#   5. the host CPU, where it has AVX512-BF16 (no machine the compiler is
#      built on has it): bf16 expert math with vdpbf16ps against the same
#      arithmetic in f32 FMAs (same routing, same bits up to denormals),
#      and the time of a small MoE model in f32, bf16 FMAs and vdpbf16ps.
# Prints a Markdown table and writes it to $OUT_DIR/results.md (default
# build-gpu/gpu-check) for docs/cuda.md.
#
# Where the GPU machine cannot build the compiler (no MLIR 22) or time is
# short, prepare on a build machine and carry the folder over (a few MB):
#   scripts/gpu-check.sh --prepare DIR    modules + CPU results (no GPU needed)
#   scripts/gpu-check.sh --modules DIR    on the GPU: runtime-only build, steps
#                                         3 and 4 for the bundled model
#
# Usage: scripts/gpu-check.sh [--quick] [--prepare DIR | --modules DIR]
#        (env: VMOE_BUILD_DIR, OUT_DIR, VMOE_JOBS)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 mode=full prepared=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --prepare) mode=prepare; prepared=${2:?--prepare needs a folder}; shift ;;
    --modules) mode=modules; prepared=${2:?--modules needs a folder}; shift ;;
    *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
build=${VMOE_BUILD_DIR:-build-gpu}
out=${OUT_DIR:-$build/gpu-check}
py=/usr/bin/python3
status=0
model=models/fashion-mnist
settings="2.0:on 2.0:off 0.5:on 0.5:off"

say() { printf '\n== %s\n' "$*"; }

name="" cc=""
if [ $mode != prepare ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: no NVIDIA GPU here (nvidia-smi -L failed); nothing to check" >&2
    exit 2
  fi
  gpu=$(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader | head -1)
  name=$(echo "$gpu" | cut -d, -f1 | xargs)
  cc=$(echo "$gpu" | cut -d, -f2 | tr -d ' .')
  say "GPU: $gpu (sm_$cc)"
fi
sms="80,90"
case "$cc" in ""|80|90) ;; *) sms="80,90,$cc" ;; esac

# ---- 1. build ----------------------------------------------------------------
say "build ($build, $mode)"
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
jobs=${VMOE_JOBS:-$(nproc)}
if [ ! -f "$build/CMakeCache.txt" ]; then
  if [ $mode = modules ]; then
    # The runtime and vmoe-run only: a C++17 compiler, FlatBuffers, zlib.
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DVMOE_ENABLE_COMPILER=OFF \
      $(command -v ninja >/dev/null && echo -G Ninja) >/dev/null
  elif command -v clang++-22 >/dev/null && [ -d /usr/lib/llvm-22/lib/cmake/mlir ]; then
    cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
      -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir >/dev/null
  else
    VMOE_BUILD_DIR=$build scripts/setup.sh
  fi
fi
if [ $mode = modules ]; then
  cmake --build "$build" -j "$jobs" --target vmoe-run vmoe_runtime_tests
else
  cmake --build "$build" -j "$jobs"
fi
mkdir -p "$out"
bin=$build/bin

# The bundled model, compiled for the CPU and for CUDA, its samples, and the
# CPU backend's results at every setting (what --prepare carries over).
prepare_bundled() { # dir
  local dir=$1
  mkdir -p "$dir"
  "$bin/vmoe-compile" $model/config.json --weights $model/weights.npz \
    --batch 8 --max-capacity-factor 2 -o "$dir/fm-cpu.vmoe" >/dev/null
  "$bin/vmoe-compile" $model/config.json --weights $model/weights.npz \
    --batch 8 --max-capacity-factor 2 --target=cuda --sm=$sms -o "$dir/fm-cuda.vmoe"
  $py -c 'import sys, numpy as np; np.save(sys.argv[2], np.load(sys.argv[1])["inputs"])' \
    $model/samples.npz "$dir/samples.npy"
  for s in $settings; do
    local cf=${s%:*} bpr=${s#*:}
    "$bin/vmoe-run" "$dir/fm-cpu.vmoe" --input "$dir/samples.npy" --capacity-factor $cf \
      --bpr $bpr --show 0 --output "$dir/cpu-$cf-$bpr.npy" > "$dir/cpu-$cf-$bpr.txt"
  done
}

# bf16 expert math for the host CPU check (5): the k1/k2 test model with
# vdpbf16ps (x86-64-v4+avx512bf16) and in FMAs (x86-64-v3), and a one-layer
# MoE model (D 256, F 1024, E 8; 8 MB of bf16 weights) in f32 (x86-64-v4)
# and both bf16 forms, for timing.
prepare_bf16() { # dir
  local dir=$1 cfg=$1/moe-layer.json
  mkdir -p "$dir"
  for cpu in x86-64-v4+avx512bf16 x86-64-v3; do
    "$bin/vmoe-compile" tests/cross/moe-k1-k2.mlir --random-weights=7 \
      --expert-math=bf16 --cpu=$cpu -o "$dir/k1k2-bf16-$cpu.vmoe" >/dev/null
  done
  cat > "$cfg" <<'EOF2'
{"name": "moe-layer", "image_size": [224, 224], "patch_size": 32,
 "hidden_size": 256, "classifier": "token", "num_classes": 10,
 "transformer": {"num_layers": 1, "mlp_dim": 1024, "num_heads": 4},
 "encoder": {"moe": {"layers": [0], "num_experts": 8,
   "router": {"num_selected_experts": 2}}}}
EOF2
  "$bin/vmoe-compile" "$cfg" --random-weights=3 --batch 64 --cpu=x86-64-v4 \
    -o "$dir/layer-f32.vmoe" >/dev/null
  for cpu in x86-64-v4+avx512bf16 x86-64-v3; do
    "$bin/vmoe-compile" "$cfg" --random-weights=3 --batch 64 --expert-math=bf16 \
      --cpu=$cpu -o "$dir/layer-bf16-$cpu.vmoe" >/dev/null
  done
  $py -c 'import sys, numpy as np; np.save(sys.argv[1], np.random.default_rng(5).uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32))' \
    "$dir/k1k2-images.npy"
}

if [ $mode = prepare ]; then
  prepare_bundled "$prepared"
  prepare_bf16 "$prepared/bf16"
  echo "gpu-check: prepared $prepared; on the GPU machine run: scripts/gpu-check.sh --modules $prepared"
  exit 0
fi

# ---- 2. GPU end-to-end tests ---------------------------------------------------
e2e="not run (--modules)" ctests=""
if [ $mode = full ]; then
  say "GPU end-to-end tests (reference logits, routing exactly)"
  filter='DefaultBpr/EndToEnd.*:EndToEndVariants.*:EndToEndBatch.*:BundledModel.*:ModelVariants.*:EndToEndRouting.*:Routing*'
  [ $quick = 1 ] && filter='DefaultBpr/EndToEnd.*:BundledModel.*'
  if VMOE_E2E_DEVICE=cuda "$bin/vmoe_e2e_test" --gtest_filter="$filter" \
      > "$out/e2e.log" 2>&1; then
    e2e="pass"
  else
    e2e="FAIL"; status=1
  fi
  tail -3 "$out/e2e.log"
  lit=$(command -v lit || echo /usr/lib/llvm-22/bin/lit)
  if [ -x "$lit" ] && "$lit" -s "$build/tests/lit/targets/cuda" > "$out/lit.log" 2>&1; then
    ctests="PTX lit tests pass; "
  else
    ctests="PTX lit tests FAIL; "; status=1
  fi
fi
if "$bin/vmoe_runtime_tests" --gtest_filter='Cuda*:FakeCuda*:Session.*' \
    > "$out/runtime.log" 2>&1; then
  ctests+="runtime CUDA tests pass"
else
  ctests+="runtime CUDA tests FAIL"; status=1
fi
echo "$ctests"

# ---- 3. bundled model: GPU against CPU ----------------------------------------
say "bundled model: GPU against the CPU backend"
dir=${prepared:-$out/bundled}
[ $mode = full ] && prepare_bundled "$dir"
compare_rows=""
for s in $settings; do
  cf=${s%:*} bpr=${s#*:}
  "$bin/vmoe-run" "$dir/fm-cuda.vmoe" --input "$dir/samples.npy" --capacity-factor $cf \
    --bpr $bpr --show 0 --device cuda --output "$out/gpu.npy" > "$out/gpu.txt" \
    || { echo "vmoe-run on the GPU failed:"; cat "$out/gpu.txt"; status=1; continue; }
  row=$($py - "$dir/cpu-$cf-$bpr.npy" "$out/gpu.npy" "$dir/cpu-$cf-$bpr.txt" "$out/gpu.txt" <<'EOF'
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

# ---- 4. benchmarks ---------------------------------------------------------------
say "benchmarks"
# FP32 (CUDA core) peak TFLOP/s: the kernels use FP32 arithmetic.
peak=$(case "$name" in
  *H200*|*H100*SXM*|*"H100 80GB HBM3"*) echo 67 ;; *H100*) echo 51 ;;
  *A100*) echo 19.5 ;; *L40S*) echo 91.6 ;; *A10*) echo 31.2 ;;
  *4090*) echo 82.6 ;; *) echo 0 ;; esac)
bench_rows=""
bench() { # label, module, batch, config (a file or JSON text)
  local label=$1 module=$2 batch=$3 config=$4 repeat=50
  [ $quick = 1 ] && repeat=10
  local line ms
  line=$("$bin/vmoe-run" "$module" --device cuda --repeat $repeat --quiet | grep '^time:') \
    || { echo "benchmark of $label failed"; status=1; return; }
  ms=$(echo "$line" | sed -E 's/.*median ([0-9.]+) ms.*/\1/')
  bench_rows+=$($py - "$config" "$batch" "$ms" "$peak" "$label" <<'EOF'
import json, sys
arg = sys.argv[1]
cfg = json.loads(arg) if arg.lstrip().startswith("{") else json.load(open(arg))
batch, ms, peak, label = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
D, C, p = cfg["hidden_size"], cfg.get("channels", 3), cfg["patch_size"]
if isinstance(p, list):
    p = p[0]
h, w = cfg["image_size"]
enc = {**(cfg.get("transformer") or {}), **(cfg.get("encoder") or {})}
M, L = enc["mlp_dim"], enc["num_layers"]
moe = (cfg.get("encoder") or {}).get("moe") or {}
T = (h // p) * (w // p) + (1 if cfg.get("classifier", "token") == "token" else 0)
moe_layers = set(moe.get("layers", []))
E = moe.get("num_experts", 1)
k = (moe.get("router") or {}).get("num_selected_experts", 1)
# Multiply-adds x 2 per image: patch embedding, attention (QKV, scores,
# values, output), MLP or router + k experts at full capacity, head.
f = 2 * (T - 1) * p * p * C * D
for l in range(L):
    f += 2 * T * D * 3 * D + 2 * 2 * T * T * D + 2 * T * D * D
    f += (2 * T * D * E + k * 2 * 2 * T * D * M) if l in moe_layers else 2 * 2 * T * D * M
f += 2 * D * cfg.get("num_classes", 10)
tflops = f * batch / (ms * 1e-3) / 1e12
share = f"{100 * tflops / peak:.2f}%" if peak else "n/a"
print(f"| {label} | {batch} | {ms:.3f} | {batch / (ms * 1e-3):.0f} | {tflops:.4f} | {share} |")
EOF
)$'\n'
}
bench "bundled model (Fashion-MNIST)" "$dir/fm-cuda.vmoe" 8 $model/config.json
if [ $mode = full ]; then
  s32cfg=$("$bin/vmoe-compile" --preset vmoe-s32-e8-last2 --batch 8 --emit=config)
  "$bin/vmoe-compile" --preset vmoe-s32-e8-last2 --random-weights=1 --batch 8 \
    --target=cuda --sm=$sms -o "$out/s32-cuda.vmoe" >/dev/null
  bench "V-MoE S/32, E=8, last 2" "$out/s32-cuda.vmoe" 8 "$s32cfg"
fi

torch_row="PyTorch: not run (no PyTorch with CUDA)"
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

# ---- 5. host CPU: AVX512-BF16 ----------------------------------------------------
say "host CPU: bf16 expert math, vdpbf16ps against f32 FMAs"
cpu_row="host CPU check: skipped (no AVX512-BF16 on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
if grep -qw avx512_bf16 /proc/cpuinfo; then
  bdir=${prepared:+$prepared/bf16}
  bdir=${bdir:-$out/bf16}
  [ $mode = full ] && prepare_bf16 "$bdir"
  same="same"
  for s in $settings; do
    cf=${s%:*} bpr=${s#*:}
    for cpu in x86-64-v4+avx512bf16 x86-64-v3; do
      "$bin/vmoe-run" "$bdir/k1k2-bf16-$cpu.vmoe" --input "$bdir/k1k2-images.npy" \
        --capacity-factor $cf --bpr $bpr --show 0 --output "$out/bf16-$cpu.npy" \
        > "$out/bf16-$cpu.txt" || { same="vmoe-run FAILED"; status=1; }
    done
    cmp -s <(grep '^MoE layer' "$out/bf16-x86-64-v4+avx512bf16.txt") \
           <(grep '^MoE layer' "$out/bf16-x86-64-v3.txt") || same="routing DIFFERS"
    $py -c 'import sys, numpy as np; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); print(f"cf {sys.argv[3]} BPR {sys.argv[4]}: max |vdpbf16ps - FMA| {np.abs(a - b).max():.3g}"); sys.exit(0 if np.abs(a - b).max() <= 1e-6 * max(1.0, np.abs(b).max()) else 1)' \
      "$out/bf16-x86-64-v4+avx512bf16.npy" "$out/bf16-x86-64-v3.npy" $cf $bpr \
      || same="logits DIFFER"
  done
  [ "$same" = same ] || status=1
  times=""
  for m in layer-f32 layer-bf16-x86-64-v3 layer-bf16-x86-64-v4+avx512bf16; do
    t=$("$bin/vmoe-run" "$bdir/$m.vmoe" --threads 1 --repeat 20 --quiet | grep '^time:' \
        | sed -E 's/.*median ([0-9.]+) ms.*/\1/')
    times+="$m ${t:-FAILED} ms; "
  done
  cpu_row="host CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)): bf16 expert math, vdpbf16ps vs FMA form: $same; one-layer MoE, batch 64, 1 thread, median: $times"
fi
echo "$cpu_row"

# ---- report ------------------------------------------------------------------------
{
  echo "### $(date -u +%Y-%m-%d): $name (sm_$cc), driver $(echo "$gpu" | cut -d, -f3 | xargs)"
  echo
  echo "GPU end-to-end tests: $e2e; $ctests."
  echo
  echo "| capacity factor | BPR | max abs logit diff (GPU vs CPU) | top-1 agreement | routing |"
  echo "|---|---|---|---|---|"
  printf '%s' "$compare_rows"
  echo
  echo "| model | batch | ms / batch | images/s | TFLOP/s | of FP32 peak ($peak TFLOP/s) |"
  echo "|---|---|---|---|---|---|"
  printf '%s' "$bench_rows"
  echo
  echo "$torch_row"
  echo
  echo "$cpu_row"
} | tee "$out/results.md"
exit $status
