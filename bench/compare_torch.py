#!/usr/bin/python3
"""vmoe against PyTorch CPU on the same V-MoE, weights and threads.

The PyTorch side is python/vmoe_torch.py, a faithful implementation of vmoe's
inference semantics (softmax router, top-k, k-major capacity assignment,
bf16 dispatch, gathers instead of one-hot einsums). Both run the same random
images; the logits are compared, then each is timed (median of --repeat
runs after warm-up) and the ratio printed.

  compare_torch.py --model models/fashion-mnist --batch 8 --threads 1
  compare_torch.py --preset vmoe-s32-e8-last2 --batch 8 --threads 2
  compare_torch.py --preset vmoe-s32-e8-last2 --batch 8 \
      --vmoe-flag=--expert-math=int8 --vmoe-flag=--dense-math=int8

A preset gets deterministic random weights (written once to --work).

Debian's PyTorch does its GEMMs in OpenBLAS, whose threads torch.set_num_threads()
does not limit: OPENBLAS_NUM_THREADS (and OMP_/MKL_NUM_THREADS) are set to
--threads before torch is imported, and the thread count OpenBLAS reports is
printed. When OpenBLAS would run kernels older than the best this CPU has
(bench/openblas_core.py), OPENBLAS_CORETYPE is set to the best before torch
loads, and both are printed. bench/run_benchmarks.py runs the whole comparison (all models, thread
counts, interleaved rounds).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def requested_threads(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# Before torch (and OpenBLAS with it) is loaded.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = requested_threads(sys.argv)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# OpenBLAS's kernels: when the ones it would choose are older than the best
# this host runs (a CPU newer than its table), force the best before torch
# loads it. Probed in a child process, which loads the same libblas.so.3.
_probe = json.loads(subprocess.run(
    [sys.executable, os.path.join(ROOT, "bench", "openblas_core.py")],
    check=True, capture_output=True, text=True).stdout)
if _probe["force"]:
    os.environ["OPENBLAS_CORETYPE"] = _probe["force"]

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "python"))
import openblas_core  # noqa: E402  (bench/, this script's folder)
import torch  # noqa: E402
import vmoe_torch  # noqa: E402


def run(cmd):
    result = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return result.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="folder with config.json and weights.npz")
    src.add_argument("--preset", help="a vmoe-compile preset name")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--capacity-factor", type=float, default=None)
    ap.add_argument("--bpr", choices=["on", "off"], default=None)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--vmoe-flag", action="append", default=[],
                    help="an extra vmoe-compile flag for vmoe's module "
                         "(e.g. --vmoe-flag=--expert-math=int8); repeatable")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    bindir = os.path.join(args.build, "bin")

    # The model: a config and weights both sides read.
    if args.model:
        config_path = os.path.join(args.model, "config.json")
        weights = os.path.join(args.model, "weights.npz")
        name = os.path.basename(os.path.normpath(args.model))
        overrides = ["--batch", str(args.batch)]
        effective = json.loads(run([os.path.join(bindir, "vmoe-compile"), config_path,
                                    "--emit=config", *overrides]))
    else:
        name = args.preset
        effective = json.loads(run([os.path.join(bindir, "vmoe-compile"), "--preset",
                                    args.preset, "--batch", str(args.batch),
                                    "--emit=config"]))
        config_path = os.path.join(args.work, f"{name}-b{args.batch}.json")
        with open(config_path, "w") as f:
            json.dump(effective, f)
        weights = os.path.join(args.work, f"{name}.npz")
        if not os.path.exists(weights):
            gen = torch.Generator().manual_seed(0)
            params = vmoe_torch.init_params(effective, gen)
            rep = effective.get("representation_size")
            if rep is not None and "pre_logits/kernel" not in params:
                d = effective["hidden_size"]
                bound = (6.0 / (d + rep)) ** 0.5
                params["pre_logits/kernel"] = (torch.rand(d, rep, generator=gen) * 2 - 1) * bound
                params["pre_logits/bias"] = torch.zeros(rep)
                params["head/kernel"] = torch.randn(rep, effective["num_classes"],
                                                    generator=gen) * 0.02
            vmoe_torch.save_npz(params, weights)
        overrides = []
    cfg = effective
    max_cf = max(2.0, args.capacity_factor or 0.0)
    suffix = "".join("-" + f.lstrip("-").replace("=", "-").replace("/", "-")
                     for f in args.vmoe_flag)
    module = os.path.join(args.work, f"{name}-b{args.batch}{suffix}.vmoe")
    run([os.path.join(bindir, "vmoe-compile"), config_path, "--weights", weights,
         "--max-capacity-factor", str(max_cf), *overrides, *args.vmoe_flag,
         "-o", module])

    # Same images, same routing knobs.
    h, w = cfg["image_size"]
    c = cfg.get("channels", 3)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(args.batch, h, w, c)).astype(np.float32)
    images_path = os.path.join(args.work, "images.npy")
    logits_path = os.path.join(args.work, "logits.npy")
    np.save(images_path, images)
    knobs = []
    if args.capacity_factor:
        knobs += ["--capacity-factor", str(args.capacity_factor)]
    if args.bpr:
        knobs += ["--bpr", args.bpr]
    run([os.path.join(bindir, "vmoe-run"), module, "--input", images_path, "--output",
         logits_path, "--quiet", "--threads", str(args.threads), *knobs])
    ours_logits = np.load(logits_path)

    torch.set_num_threads(args.threads)
    params = vmoe_torch.load_npz(weights)
    x = torch.from_numpy(images)
    kwargs = {}
    if args.capacity_factor:
        kwargs["capacity_factor"] = args.capacity_factor
    if args.bpr:
        kwargs["batch_priority"] = args.bpr == "on"
    with torch.no_grad():
        torch_logits, _ = vmoe_torch.forward(params, x, cfg, **kwargs)
        diff = float(np.abs(torch_logits.numpy() - ours_logits).max())
        for _ in range(3):
            vmoe_torch.forward(params, x, cfg, **kwargs)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            vmoe_torch.forward(params, x, cfg, **kwargs)
            times.append((time.perf_counter() - t0) * 1e3)
    torch_ms = statistics.median(times)

    bench_json = os.path.join(args.work, "bench.json")
    bench_cmd = [os.path.join(bindir, "vmoe-bench"), module, "--threads",
                 str(args.threads), "--repeat", str(args.repeat), "--json", bench_json]
    if args.capacity_factor:
        bench_cmd += ["--capacity-factor", str(args.capacity_factor)]
    if args.bpr:
        bench_cmd += ["--bpr", args.bpr]
    run(bench_cmd)
    ours = json.load(open(bench_json))["results"][0]
    print(f"model {name}, batch {args.batch}, {args.threads} thread(s), "
          f"capacity factor {ours['capacity_factor']}, BPR {'on' if ours['bpr'] else 'off'}"
          + (f", vmoe-compile {' '.join(args.vmoe_flag)}" if args.vmoe_flag else ""))
    print(f"  logits max |vmoe - torch| = {diff:.3g}")
    print(f"  vmoe   {ours['median_ms']:9.3f} ms  ({ours['images_per_second']:.1f} images/s, "
          f"{ours['gflops']:.1f} GFLOP/s)")
    blas_info = openblas_core.openblas_info()
    blas, blas_threads = blas_info["blas"], blas_info["threads"]
    print(f"  torch  {torch_ms:9.3f} ms  (torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread(s), BLAS {os.path.basename(blas or 'none')} with {blas_threads} thread(s))")
    print(f"  host {_probe['isa']}; OpenBLAS core {blas_info['core']}"
          + (f" (forced: it chose {_probe['core']}, older than this host's best "
             f"{_probe['best']})" if _probe["force"] else ""))
    if _probe["force"] and blas_info["core"] != _probe["force"]:
        print(f"  warning: OPENBLAS_CORETYPE={_probe['force']} did not take")
    if blas is None or "openblas" not in os.path.basename(blas):
        print("  warning: PyTorch is not using OpenBLAS; Debian's python3-torch needs "
              "libopenblas0-pthread to be fast")
    elif blas_threads != args.threads:
        print(f"  warning: OpenBLAS uses {blas_threads} threads, not {args.threads}")
    print(f"  speedup {torch_ms / ours['median_ms']:.2f}x")


if __name__ == "__main__":
    main()
