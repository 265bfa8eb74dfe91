#!/usr/bin/python3
"""Classifies the bundled Fashion-MNIST sample images with the vmoe Python
package, then sweeps the capacity factor with and without Batch Prioritized
Routing on the same module (nothing is recompiled) and writes the table
(sweep.csv, the columns of scripts/demo.sh's) and the curve (sweep.svg,
drawn by scripts/plot_sweep.py).

  PYTHONPATH=build/python /usr/bin/python3 examples/python/classify.py
      [--model DIR] [--module FILE] [--out DIR] [--threads N] [--show N]
      [--capacity-factors 2.0,1.05,...]

--model: a model directory with config.json, weights.npz and samples.npz
(default: the bundled models/fashion-mnist), compiled into OUT unless
--module names a module compiled from it.
"""
import argparse
import csv
import pathlib
import subprocess
import sys
import time

import numpy as np

import vmoe

ROOT = pathlib.Path(__file__).resolve().parents[2]


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=pathlib.Path,
                   default=ROOT / "models" / "fashion-mnist")
    p.add_argument("--module", type=pathlib.Path,
                   help="a module compiled from --model (default: compile)")
    p.add_argument("--out", type=pathlib.Path,
                   default=pathlib.Path("build/example-python"))
    p.add_argument("--threads", type=int, default=0,
                   help="threads per call (0: one per CPU)")
    p.add_argument("--show", type=int, default=8,
                   help="images whose classes to print")
    p.add_argument("--capacity-factors", default="2.0,1.05,0.75,0.5,0.25,0.1")
    return p.parse_args()


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def classify(module, session, images, labels, show):
    # uint8 pixels: the package maps them to [-1, 1] as vmoe does.
    logits = session.run(images)
    names = module.class_names or [str(i) for i in range(module.num_classes)]
    probs = softmax(logits)
    top = logits.argmax(axis=1)
    for i in range(min(show, len(images))):
        print(f"image {i}: {names[top[i]]} ({probs[i, top[i]]:.1%})"
              f"  [label {names[labels[i]]}]")
    correct = int((top == labels).sum())
    print(f"accuracy: {correct} of {len(labels)} "
          f"({100 * correct / len(labels):.2f}%)")


def sweep(session, images, labels, factors):
    # Converted once: float32 C-contiguous images are read in place.
    floats = np.ascontiguousarray(
        (images.astype(np.float32) / 255 * 2 - 1)[..., None])
    rows = []
    print(f"{'capacity factor':<16} {'BPR':<8} {'accuracy':<10} "
          f"{'assignments processed':<22} ms/image")
    for cf in factors:
        for bpr in (True, False):
            start = time.perf_counter()
            logits = session.run(floats, capacity_factor=cf, bpr=bpr)
            ms = (time.perf_counter() - start) * 1000 / len(floats)
            share = session.routing_stats()["kept_share"]
            accuracy = float((logits.argmax(axis=1) == labels).mean())
            rows.append({"capacity_factor": cf,
                         "bpr": "on" if bpr else "off",
                         "accuracy": f"{accuracy:.6f}",
                         "assignments_kept_share": f"{share:.6f}",
                         "ms_per_image": f"{ms:.6f}"})
            print(f"{cf:<16} {rows[-1]['bpr']:<8} "
                  f"{f'{100 * accuracy:.2f}%':<10} "
                  f"{f'{100 * share:.1f}%':<22} {ms:.3f}")
    return rows


def main():
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    module_path = args.module
    if module_path is None:
        module_path = args.out / "fashion-mnist.vmoe"
        print(f"== compiling {args.model} into {module_path}")
        vmoe.compile(args.model / "config.json",
                     weights=args.model / "weights.npz", output=module_path,
                     batch=8, max_capacity_factor=2.0)
    module = vmoe.load(module_path)
    print(module)
    with np.load(args.model / "samples.npz") as samples:
        images, labels = samples["images"], samples["labels"]
    session = module.session(threads=args.threads)

    print(f"== the {len(images)} bundled sample images "
          f"({session.threads} threads)")
    classify(module, session, images, labels, args.show)

    print("== capacity sweep")
    factors = [float(f) for f in args.capacity_factors.split(",")]
    rows = sweep(session, images, labels, factors)
    csv_path = args.out / "sweep.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    svg_path = args.out / "sweep.svg"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "plot_sweep.py"),
                    str(csv_path), str(svg_path)], check=True)
    print(f"wrote {csv_path} and {svg_path}")


if __name__ == "__main__":
    main()
