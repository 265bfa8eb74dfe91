#!/usr/bin/env bash
# The main job: set up and build, compile the bundled V-MoE (trained on
# Fashion-MNIST, models/fashion-mnist), classify the bundled sample images
# and, when Debian's dataset-fashion-mnist is installed, the 10,000 test
# images; then sweep the capacity factor with and without Batch Prioritized
# Routing and write the table (CSV) and the curve (SVG).
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

echo "== compiling the bundled model (models/fashion-mnist)"
"$build_dir/bin/vmoe-compile" models/fashion-mnist/config.json \
  --weights models/fashion-mnist/weights.npz --batch 8 \
  --max-capacity-factor 2.0 -o "$module"
"$run" "$module" --info

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
echo "capacity_factor,bpr,accuracy,assignments_kept_share,ms_per_image" > "$csv"
printf "%-16s %-8s %-10s %-22s %s\n" "capacity factor" "BPR" "accuracy" \
  "assignments processed" "ms/image"
for cf in 2.0 1.05 0.75 0.5 0.25 0.1; do
  for bpr in on off; do
    line=$("$run" "$module" --input "$images" --labels "$labels" --quiet \
      --capacity-factor "$cf" --bpr "$bpr" | grep '^summary,')
    acc=$(echo "$line" | sed 's/.*,accuracy=\([^,]*\).*/\1/')
    share=$(echo "$line" | sed 's/.*,assignments_kept_share=\([^,]*\).*/\1/')
    ms=$(echo "$line" | sed 's/.*,ms_per_image=\([^,]*\).*/\1/')
    echo "$cf,$bpr,$acc,$share,$ms" >> "$csv"
    printf "%-16s %-8s %-10s %-22s %s\n" "$cf" "$bpr" \
      "$($py -c "print(f'{100*$acc:.2f}%')")" \
      "$($py -c "print(f'{100*$share:.1f}%')")" "$ms"
  done
done
$py scripts/plot_sweep.py "$csv" "$out/sweep.svg"
echo "wrote $csv and $out/sweep.svg"
