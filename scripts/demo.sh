#!/usr/bin/env bash
# The main job: set up and build, compile the bundled V-MoE (trained on
# Fashion-MNIST, models/fashion-mnist), classify the bundled sample images
# and, when Debian's dataset-fashion-mnist is installed, the 10,000 test
# images; then sweep the capacity factor with and without Batch Prioritized
# Routing, the fp32 module beside the int8 one (--expert-math=int8
# --dense-math=int8, the same images), and write the table (CSV) and the
# curves (SVG).
#   scripts/demo.sh           the whole demo
#   scripts/demo.sh --quick   the bundled samples only (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
scripts/setup.sh
build_dir=${VMOE_BUILD_DIR:-build}
out="$build_dir/demo"
mkdir -p "$out"
py=/usr/bin/python3
run="$build_dir/bin/vmoe-run"
module="$out/fashion-mnist.vmoe"
module_int8="$out/fashion-mnist-int8.vmoe"
module_int8_experts="$out/fashion-mnist-int8-experts.vmoe"

echo "== compiling the bundled model (models/fashion-mnist)"
"$build_dir/bin/vmoe-compile" models/fashion-mnist/config.json \
  --weights models/fashion-mnist/weights.npz --batch 8 \
  --max-capacity-factor 2.0 -o "$module"
"$run" "$module" --info
echo "== compiling it with int8 experts and dense layers"
"$build_dir/bin/vmoe-compile" models/fashion-mnist/config.json \
  --weights models/fashion-mnist/weights.npz --batch 8 \
  --max-capacity-factor 2.0 --expert-math=int8 --dense-math=int8 \
  -o "$module_int8"
# int8 experts only: the first MoE layer's router then sees the fp32 model's
# input, so its kept assignments must equal fp32's.
"$build_dir/bin/vmoe-compile" models/fashion-mnist/config.json \
  --weights models/fashion-mnist/weights.npz --batch 8 \
  --max-capacity-factor 2.0 --expert-math=int8 -o "$module_int8_experts"

echo "== the bundled sample images"
$py scripts/fashion_mnist_data.py samples models/fashion-mnist "$out"
"$run" "$module" --input "$out/samples_images.npy" \
  --labels "$out/samples_labels.npy" --top 2 --show 8

images="$out/samples_images.npy"
labels="$out/samples_labels.npy"
dataset=/usr/share/datasets/fashion-mnist
if [ "$quick" = 0 ] && [ -f "$dataset/t10k-images-idx3-ubyte.gz" ]; then
  echo "== the 10,000 Fashion-MNIST test images"
  $py scripts/fashion_mnist_data.py testset "$dataset" "$out"
  images="$out/test_images.npy"
  labels="$out/test_labels.npy"
  "$run" "$module" --input "$images" --labels "$labels" --quiet
fi

echo "== capacity sweep ($(basename "$images"))"
csv="$out/sweep.csv"
echo "capacity_factor,bpr,accuracy,assignments_kept_share,ms_per_image,\
accuracy_int8,assignments_kept_share_int8,ms_per_image_int8" > "$csv"
printf "%-16s %-5s %-9s %-9s %-22s %-9s %s\n" "capacity factor" "BPR" \
  "fp32" "int8" "assignments processed" "fp32 ms" "int8 ms"
# One run: "accuracy,share,ms" from vmoe-run's summary line.
measure() {
  "$run" "$1" --input "$images" --labels "$labels" --quiet \
    --capacity-factor "$2" --bpr "$3" | grep '^summary,' |
    sed 's/.*,accuracy=\([^,]*\).*,assignments_kept_share=\([^,]*\),ms_per_image=\([^,]*\).*/\1,\2,\3/'
}
for cf in 2.0 1.05 0.75 0.5 0.25 0.1; do
  for bpr in on off; do
    IFS=, read -r acc share ms <<<"$(measure "$module" "$cf" "$bpr")"
    IFS=, read -r acc8 share8 ms8 <<<"$(measure "$module_int8" "$cf" "$bpr")"
    echo "$cf,$bpr,$acc,$share,$ms,$acc8,$share8,$ms8" >> "$csv"
    printf "%-16s %-5s %-9s %-9s %-22s %-9s %s\n" "$cf" "$bpr" \
      "$($py -c "print(f'{100*$acc:.2f}%')")" \
      "$($py -c "print(f'{100*$acc8:.2f}%')")" \
      "$($py -c "print(f'{100*$share:.1f}% / {100*$share8:.1f}%')")" \
      "$ms" "$ms8"
  done
done
echo "== kept assignments at the default capacity factor: fp32, int8, int8 experts only"
for bpr in on off; do
  for m in "$module" "$module_int8" "$module_int8_experts"; do
    echo "BPR $bpr, $(basename "$m"):"
    "$run" "$m" --input "$images" --labels "$labels" --bpr "$bpr" --show 0 |
      grep '^MoE layer' | sed 's/.*\(MoE layer [0-9]*\):.*\(kept [0-9]* of [0-9]*\).*/  \1: \2/'
  done
done
$py scripts/plot_sweep.py "$csv" "$out/sweep.svg"
echo "wrote $csv and $out/sweep.svg"
