#!/usr/bin/python3
"""int8 against vmoe's own fp32 on one model: the expert GEMMs, the dense
GEMMs and the whole model, per CPU target, from vmoe-bench --profile.

  bench/int8_gemms.py [--preset vmoe-s32] [--batch 1,8] [--threads 1]
                      [--cpu host,x86-64-v3] [--build build] [--work DIR]

For every --cpu it compiles the preset (random weights) twice, f32 and with
--expert-math=int8 --dense-math=int8, runs both in one vmoe-bench call
(alternating is not needed: the kernels are timed per dispatch) and prints
a Markdown table: per batch, the summed times of the expert GEMM kernels
(expert_up, expert_down), of the dense GEMM kernels (attn_qkv, attn_out,
mlp_up, mlp_down), the whole model, and the module sizes. x86-64-v3 modules
are the AVX2 form (vpmaddwd); host modules use what the host has (vpdpbusd
with AVX512-VNNI or AVX-VNNI). The time outside these kernels (attention,
patch embedding, routing) is f32 in both.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERT = ("moe_expert_up", "moe_expert_down")
DENSE = ("attn_qkv", "attn_out", "mlp_up", "mlp_down")


def kind(name):
    """The kernel kind of a kernel name: model_..._<kind>_<index>."""
    base = name.rstrip("0123456789").rstrip("_")
    for k in EXPERT + DENSE:
        if base.endswith(k):
            return k
    return "other"


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"int8_gemms.py: {' '.join(cmd)} failed:\n{proc.stderr}")
    return proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="vmoe-s32")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--cpu", default="host,x86-64-v3")
    ap.add_argument("--repeat", default="5")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", default=None,
                    help="folder for the modules (default: a temporary one)")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    work = args.work or tempfile.mkdtemp(prefix="vmoe-int8-")
    os.makedirs(work, exist_ok=True)
    compile_tool = os.path.join(args.build, "bin", "vmoe-compile")
    bench = os.path.join(args.build, "bin", "vmoe-bench")
    print(f"| CPU target | batch | expert GEMMs f32 / int8 | ratio | dense GEMMs "
          f"f32 / int8 | ratio | whole model f32 / int8 | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    sizes = []
    for cpu in args.cpu.split(","):
        modules = {}
        for math in ("f32", "int8"):
            path = os.path.join(work, f"{args.preset}-{math}-{cpu}.vmoe")
            flags = (["--expert-math=int8", "--dense-math=int8"]
                     if math == "int8" else [])
            run([compile_tool, "--preset", args.preset, "--random-weights=1",
                 "--batch", str(max(batches)), f"--cpu={cpu}", *flags,
                 "--quiet", "-o", path])
            modules[math] = path
            sizes.append((cpu, math, os.path.getsize(path)))
        out = os.path.join(work, f"{cpu}.json")
        run([bench, modules["f32"], modules["int8"], "--batch", args.batch,
             "--threads", args.threads, "--warmup", "1", "--repeat",
             args.repeat, "--profile", "--json", out])
        with open(out) as f:
            results = json.load(f)["results"]
        times = {}
        for r in results:
            math = "int8" if r["module"] == modules["int8"] else "f32"
            groups = {"expert": 0.0, "dense": 0.0}
            for k in r["kernels"]:
                kk = kind(k["name"])
                if kk in EXPERT:
                    groups["expert"] += k["ms"]
                elif kk in DENSE:
                    groups["dense"] += k["ms"]
            groups["model"] = r["median_ms"]
            times[(r["batch"], math)] = groups
        for b in batches:
            f32, int8 = times[(b, "f32")], times[(b, "int8")]
            cells = []
            for g in ("expert", "dense", "model"):
                cells.append(f"{f32[g]:.2f} / {int8[g]:.2f} ms")
                cells.append(f"{f32[g] / int8[g]:.2f}x")
            print(f"| {cpu} | {b} | " + " | ".join(cells) + " |")
        for path in modules.values():
            if not args.work:
                os.remove(path)
    print()
    print("| CPU target | module | bytes |")
    print("|---|---|---|")
    for cpu, math, size in sizes:
        print(f"| {cpu} | {math} | {size:,} |")


if __name__ == "__main__":
    main()
