#!/usr/bin/python3
"""vmoe against PyTorch CPU, side by side, in one command.

  bench/run_benchmarks.py                  # everything (about half an hour on 2 cores)
  bench/run_benchmarks.py --quick          # a short run: bundled model and S/32 only
  bench/run_benchmarks.py --update-docs    # ... and rewrite the tables in docs/benchmarks.md
  bench/run_benchmarks.py --from-json build/bench/results.json --update-docs
  bench/run_benchmarks.py --moe-layers-only --update-docs   # rerun only the MoE layer table

What it measures, on the machine it runs on, with the binaries of --build
(default build/):

  * the machine's single-core fp32 FMA peak (bench/peak_fma.c, compiled here);
  * whole models: the bundled Fashion-MNIST V-MoE and the V-MoE-S/32 and
    V-MoE-B/16 presets (E = 8, 224 px, random weights), batch 1 and 8, at 1
    and 2 threads (--threads): vmoe (vmoe-bench) and PyTorch CPU
    (python/vmoe_torch.py, a faithful implementation of vmoe's inference) on
    the same weights and images; logits and routing are checked against
    each other first;
  * where the time goes: vmoe-bench --profile, kernels grouped by kind;
  * the scaling of time with the capacity factor (2.0 ... 0.1) and with the
    batch size (1, 2, 4, 8) on V-MoE-S/32;
  * one sparse MoE layer of S/32 and B/16 shapes (E = 8 and 32, k = 2,
    cf = 1.05), with f32 and with bf16 expert weights: the expert GEMMs'
    GFLOP/s against the peak, and the whole layer against vmoe_torch.moe_mlp
    on the same weights.

Fairness: each PyTorch thread count runs in its own process whose
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS are set before torch
loads (torch.set_num_threads does not limit Debian's OpenBLAS); the harness
checks the thread count OpenBLAS reports and times a calibration GEMM. The
two sides run in alternating rounds so that the noise of a shared machine
hits both alike; times are medians over rounds.

Writes <work>/results.json and <work>/benchmarks.md (the generated tables);
--update-docs also rewrites the generated part of docs/benchmarks.md.
Needs numpy and PyTorch (apt-get install python3-torch libopenblas0-pthread).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys

import numpy as np

import openblas_core  # bench/, this script's folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN = "<!-- BEGIN run_benchmarks.py output: regenerate, do not edit by hand -->"
END = "<!-- END run_benchmarks.py output -->"
TARGET_RATIO = 1.5
BF16_TARGET_RATIO = 3.0

MODELS = {
    "fashion-mnist": {"label": "Fashion-MNIST (bundled)",
                      "folder": os.path.join(ROOT, "models", "fashion-mnist")},
    "s32": {"label": "V-MoE-S/32, E=8, last 2", "preset": "vmoe-s32-e8-last2"},
    "b16": {"label": "V-MoE-B/16, E=8, every 2", "preset": "vmoe-b16-e8-every2"},
}
# MoE-layer shapes: 8 images of the model's tokens form one routing group.
MOE_SHAPES = {"S/32": (50, 512, 2048), "B/16": (197, 768, 3072)}


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def median(values):
    return statistics.median(values) if values else float("nan")


def percentile(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    return v[min(len(v) - 1, int(q * len(v)))]


def public_command(argv):
    """The command line without --build/--work (paths of this machine)."""
    out, skip = ["bench/run_benchmarks.py"], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--build", "--work"):
            skip = True
        elif not a.startswith(("--build=", "--work=")):
            out.append(a)
    return " ".join(out)


class Harness:
    def __init__(self, args):
        self.args = args
        self.bindir = os.path.join(args.build, "bin")
        self.work = args.work
        os.makedirs(self.work, exist_ok=True)
        for tool in ("vmoe-compile", "vmoe-bench", "vmoe-run"):
            if not os.path.exists(os.path.join(self.bindir, tool)):
                sys.exit(f"run_benchmarks.py: {self.bindir}/{tool} is missing: build the "
                         f"project first (scripts/setup.sh) or pass --build DIR")
        help_text = self.sh([self.tool("vmoe-bench"), "--help"])
        if "--input" not in help_text:
            sys.exit("run_benchmarks.py: this vmoe-bench has no --input option: rebuild it")
        self.workers = {}
        self.coretype = {}  # threads -> OPENBLAS_CORETYPE set for that worker
        self.prepared = {}

    def tool(self, name):
        return os.path.join(self.bindir, name)

    def path(self, name):
        return os.path.join(self.work, name)

    def sh(self, cmd, env=None):
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            sys.exit(f"run_benchmarks.py: command failed ({result.returncode}): "
                     f"{' '.join(cmd)}\n{result.stdout}{result.stderr}")
        return result.stdout

    # ---- the PyTorch side ------------------------------------------------------------

    def worker(self, threads):
        if threads not in self.workers:
            env = dict(os.environ)
            if self.coretype.get(threads):
                env["OPENBLAS_CORETYPE"] = self.coretype[threads]
            proc = subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "bench", "torch_worker.py"), str(threads)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            self.workers[threads] = proc
        return self.workers[threads]

    def ask(self, threads, **request):
        proc = self.worker(threads)
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            sys.exit(f"run_benchmarks.py: the PyTorch worker ({threads} threads) died")
        reply = json.loads(line)
        if "error" in reply:
            sys.exit(f"run_benchmarks.py: PyTorch worker: {reply['error']}")
        return reply

    def close_worker(self, threads):
        proc = self.workers.pop(threads, None)
        if proc:
            self.ask_quit(proc)

    @staticmethod
    def ask_quit(proc):
        try:
            proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            proc.stdin.flush()
            proc.wait(timeout=60)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except BrokenPipeError:
                pass

    def close(self):
        for threads in list(self.workers):
            self.close_worker(threads)

    # ---- the machine -----------------------------------------------------------------

    def machine(self):
        info = {"os": f"{platform.system()} {platform.release()}",
                "arch": platform.machine(), "cpus": os.cpu_count()}
        try:
            with open("/proc/cpuinfo") as f:
                text = f.read()
            m = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
            info["cpu"] = m.group(1).strip() if m else platform.processor()
            m = re.search(r"^(flags|Features)\s*:\s*(.*)$", text, re.M)
            flags = set(m.group(2).split()) if m else set()
            wanted = ["avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                      "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "asimd",
                      "asimdhp", "sve", "bf16", "hypervisor"]
            info["flags"] = [f for f in wanted if f in flags]
            info["all_flags"] = sorted(flags)
            m = re.search(r"^vendor_id\s*:\s*(.*)$", text, re.M)
            info["vendor"] = m.group(1).strip() if m else ""
            info["isa"] = openblas_core.isa_name(flags, platform.machine())
            m = re.search(r"^cpu MHz\s*:\s*(.*)$", text, re.M)
            if m:
                info["mhz"] = float(m.group(1))
        except OSError:
            info["cpu"] = platform.processor()
        try:
            with open("/proc/meminfo") as f:
                kb = int(re.search(r"MemTotal:\s*(\d+)", f.read()).group(1))
            info["memory_gb"] = round(kb / 2 ** 20, 1)
        except (OSError, AttributeError):
            pass
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
            for key in ("L2 cache", "L3 cache", "Hypervisor vendor"):
                m = re.search(rf"^{key}:\s*(.*)$", out, re.M)
                if m:
                    info[key.lower().replace(" ", "_")] = m.group(1).strip()
        except OSError:
            pass
        return info

    def peak(self, threads_list):
        """Single-core fp32 FMA peak (best of trials), and at each thread count."""
        exe = self.path("peak_fma")
        src = os.path.join(ROOT, "bench", "peak_fma.c")
        arch_flag = "-mcpu=native" if platform.machine() in ("aarch64", "arm64") else "-march=native"
        compilers = [os.environ.get("CC"), "clang-22", "clang", "cc", "gcc"]
        errors = []
        for cc in filter(None, compilers):
            if not shutil.which(cc):
                continue
            r = subprocess.run([cc, "-O2", arch_flag, "-pthread", src, "-o", exe],
                               capture_output=True, text=True)
            if r.returncode == 0:
                break
            errors.append(f"{cc}: {r.stderr.strip()}")
        else:
            log("run_benchmarks.py: cannot build bench/peak_fma.c (it needs AVX2+FMA or "
                "NEON); GFLOP/s are reported without a percentage of peak.\n" +
                "\n".join(errors))
            return None
        result = {}
        for t in sorted(set([1] + list(threads_list))):
            # A busy machine lowers some measurements, never raises them: up to 8,
            # until the best two agree within 3%.
            runs = []
            while len(runs) < 8:
                runs.append(json.loads(self.sh([exe, str(t), "--json"])))
                best = sorted(r["gflops"] for r in runs)[-2:]
                if len(runs) >= 3 and best[0] >= 0.97 * best[1]:
                    break
            result[str(t)] = max(r["gflops"] for r in runs)
            result["isa"] = runs[0]["isa"]
        result["single_core"] = result["1"]
        return result

    def torch_check(self, threads):
        """Thread counts, OpenBLAS core and calibration GEMM of the PyTorch
        worker. An OpenBLAS core older than the best one the host runs is
        replaced (the worker restarts with OPENBLAS_CORETYPE set to it); a
        calibration GEMM below --min-blas-fraction of the measured peak stops
        the comparison."""
        info = self.ask(threads, cmd="info")
        first = info
        mach = self.results["machine"]
        decision = openblas_core.decide(info.get("openblas_core"),
                                        mach.get("all_flags", []), mach.get("vendor", ""),
                                        mach.get("arch", ""))
        choice = self.args.openblas_core
        force = decision["force"] if choice == "auto" else None
        if choice not in ("auto", "keep") and choice != info.get("openblas_core"):
            force = choice
        detected = info.get("openblas_core")
        if force:
            log(f"  OpenBLAS chose its {detected} kernels; this host runs {force}'s: "
                f"restarting the {threads}-thread PyTorch worker with "
                f"OPENBLAS_CORETYPE={force}")
            self.close_worker(threads)
            self.coretype[threads] = force
            info = self.ask(threads, cmd="info")
            if info.get("openblas_core") != force:
                sys.exit(f"run_benchmarks.py: OPENBLAS_CORETYPE={force} did not take: "
                         f"OpenBLAS reports {info.get('openblas_core')} "
                         f"({info.get('openblas_config')})")
        info["openblas_detected_core"] = detected
        info["calibration_gflops_detected"] = first["calibration_gflops"]
        info["openblas_best_core"] = decision["best"]
        info["openblas_forced_core"] = force
        warnings = []
        if info["blas"] is None or "openblas" not in os.path.basename(info["blas"]):
            warnings.append(f"PyTorch's BLAS is {info['blas'] or 'not a shared library'}: "
                            "Debian's python3-torch is fast only with OpenBLAS "
                            "(apt-get install libopenblas0-pthread)")
        if info["openblas_threads"] not in (None, min(threads, os.cpu_count() or threads)):
            warnings.append(f"OpenBLAS uses {info['openblas_threads']} threads, not {threads}: "
                            "the comparison is not fair")
        if info["torch_threads"] != threads:
            warnings.append(f"torch uses {info['torch_threads']} threads, not {threads}")
        peak = self.results.get("peak") or {}
        single = peak.get("single_core")
        if single:
            # (A GEMM faster than the cores' peak is reported by render() against the
            # best peak of the whole run: a busy machine's first reading is low.)
            floor = self.args.min_blas_fraction * peak.get(str(threads), single * threads)
            info["calibration_floor_gflops"] = floor
            for _ in range(3):
                # A busy machine slows some runs; the best of more of them counts.
                if info["calibration_gflops"] >= floor:
                    break
                again = self.ask(threads, cmd="info")["calibration_gflops"]
                info["calibration_gflops"] = max(info["calibration_gflops"], again)
            if info["calibration_gflops"] < floor:
                self.save()
                sys.exit(
                    f"run_benchmarks.py: PyTorch's calibration GEMM (400x512x2048, "
                    f"{threads} thread(s)) ran at {info['calibration_gflops']:.1f} GFLOP/s, "
                    f"below {self.args.min_blas_fraction:g} of the measured peak "
                    f"({floor / self.args.min_blas_fraction:.1f} GFLOP/s, {peak.get('isa')}): "
                    f"a comparison against it would flatter vmoe. OpenBLAS core "
                    f"{info.get('openblas_core')} (detected {detected}, best for this host "
                    f"{decision['best']}), BLAS {info['blas']}. Install libopenblas0-pthread, "
                    "set OPENBLAS_CORETYPE, or rerun on a quieter machine (uptime: load "
                    f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs).")
        info["warnings"] = warnings
        for w in warnings:
            log("WARNING:", w)
        return info

    # ---- models ----------------------------------------------------------------------

    def weights_for(self, key, effective):
        spec = MODELS[key]
        if "folder" in spec:
            return os.path.join(spec["folder"], "weights.npz")
        path = self.path(f"{key}-weights.npz")
        if not os.path.exists(path):
            cfg_path = self.path(f"{key}-init-config.json")
            with open(cfg_path, "w") as f:
                json.dump(effective, f)
            log(f"  random weights for {spec['preset']} -> {path}")
            self.ask(max(self.args.threads), cmd="init_weights", config=cfg_path,
                     output=path, seed=0)
        return path

    def prepare_model(self, key, batch):
        """Effective config, weights, module and images of one model at one batch size."""
        if (key, batch) in self.prepared:
            return self.prepared[(key, batch)]
        spec = MODELS[key]
        src = (["--preset", spec["preset"]] if "preset" in spec
               else [os.path.join(spec["folder"], "config.json")])
        effective = json.loads(self.sh([self.tool("vmoe-compile"), *src, "--batch", str(batch),
                                        "--emit=config"]))
        config = self.path(f"{key}-b{batch}.json")
        with open(config, "w") as f:
            json.dump(effective, f)
        weights = self.weights_for(key, effective)
        module = self.path(f"{key}-b{batch}.vmoe")
        log(f"  compile {key} batch {batch}")
        self.sh([self.tool("vmoe-compile"), config, "--weights", weights,
                 "--max-capacity-factor", "2.0", "-o", module])
        h, w = effective["image_size"]
        rng = np.random.default_rng(batch)
        images = rng.uniform(-1, 1, size=(batch, h, w, effective.get("channels", 3)))
        images_path = self.path(f"{key}-b{batch}-images.npy")
        np.save(images_path, images.astype(np.float32))
        m = self.prepared[(key, batch)] = {"key": key, "batch": batch, "config": config, "weights": weights,
                "module": module, "input": images_path, "effective": effective,
                "kind": "model"}
        return m

    def prepare_moe_layer(self, shape, experts):
        """One sparse MoE layer as a .mlir model (weights in resource blobs) and the
        same weights as .npz for PyTorch."""
        tokens, d, f = MOE_SHAPES[shape]
        images, k, cf = 8, 2, 1.05
        group = images * tokens
        name = f"moe_{shape.replace('/', '')}_e{experts}".lower()
        rng = np.random.default_rng(experts * 1000 + d)

        def uniform(bound, *dims):
            return rng.uniform(-bound, bound, size=dims).astype(np.float32)

        params = {
            "Router/dense/kernel": uniform((3.0 / d) ** 0.5, d, experts),
            "Mlp/Dense_0/kernel": uniform((3.0 / d) ** 0.5, experts, d, f),
            "Mlp/Dense_0/bias": uniform(0.02, experts, f),
            "Mlp/Dense_1/kernel": uniform((3.0 / f) ** 0.5, experts, f, d),
            "Mlp/Dense_1/bias": uniform(0.02, experts, d),
        }
        weights = self.path(f"{name}.npz")
        np.savez(weights, **params)
        x = rng.standard_normal((images, tokens, d)).astype(np.float32)
        inputs = self.path(f"{name}-input.npy")
        np.save(inputs, x)
        cfg = {"hidden_size": d, "encoder": {"moe": {
            "num_experts": experts, "group_size": group,
            "router": {"num_selected_experts": k, "noise_std": 1.0,
                       "dispatcher": {"capacity_factor": cf, "batch_priority": False,
                                      "bfloat16": True}}}}}
        config = self.path(f"{name}.json")
        with open(config, "w") as fh:
            json.dump(cfg, fh)

        def ty(*dims):
            return "tensor<" + "x".join(str(v) for v in dims) + "xf32>"

        xt = ty(images, tokens, d)
        args = [("router", "Router/dense/kernel"), ("w1", "Mlp/Dense_0/kernel"),
                ("b1", "Mlp/Dense_0/bias"), ("w2", "Mlp/Dense_1/kernel"),
                ("b2", "Mlp/Dense_1/bias")]
        mlir = self.path(f"{name}.mlir")
        with open(mlir, "w") as fh:
            fh.write(f"// One sparse MoE layer: {shape} shape, E = {experts}, k = {k}, "
                     f"cf = {cf}, one group of {group} tokens.\n")
            fh.write(f"func.func @{name}(%x: {xt}) -> {xt} {{\n")
            for arg, key in args:
                fh.write(f"  %{arg} = arith.constant dense_resource<{name}_{arg}> : "
                         f"{ty(*params[key].shape)}\n")
            fh.write(f"  %y = vmoe.sparse_moe %x, %router, %w1, %b1, %w2, %b2 {{"
                     f"num_experts = {experts}, k = {k}, group_size = {group}, "
                     f"capacity_factor = {cf} : f64, max_capacity_factor = 2.0 : f64, "
                     f"batch_priority = false, bf16_dispatch = true}}\n")
            fh.write(f"      : ({xt}, " + ", ".join(ty(*params[key].shape) for _, key in args)
                     + f") -> {xt}\n")
            fh.write(f"  return %y : {xt}\n}}\n")
            fh.write("{-#\n  dialect_resources: {\n    builtin: {\n")
            for i, (arg, key) in enumerate(args):
                fh.write(f'      {name}_{arg}: "0x04000000')
                fh.write(np.ascontiguousarray(params[key]).tobytes().hex())
                fh.write('"' + ("," if i + 1 < len(args) else "") + "\n")
            fh.write("    }\n  }\n#-}\n")
        del params
        module = self.path(f"{name}.vmoe")
        log(f"  compile MoE layer {shape} E={experts}")
        self.sh([self.tool("vmoe-compile"), mlir, "-o", module])
        module_bf16 = self.path(f"{name}-bf16.vmoe")
        self.sh([self.tool("vmoe-compile"), mlir, "--expert-weights=bf16", "-o", module_bf16])
        module_bf16math = None
        if bf16_units(self.results["machine"]):
            # bf16 x bf16 products (the 3x goal): vdpbf16ps where the host has it.
            module_bf16math = self.path(f"{name}-bf16math.vmoe")
            self.sh([self.tool("vmoe-compile"), mlir, "--expert-math=bf16", "-o",
                     module_bf16math])
            if "bf16_instructions" not in self.results:
                asm = self.sh([self.tool("vmoe-compile"), mlir, "--expert-math=bf16",
                               "--emit=asm"])
                self.results["bf16_instructions"] = {
                    op: len(re.findall(rf"\b{op}\b", asm))
                    for op in ("vdpbf16ps", "tdpbf16ps")}
        os.remove(mlir)  # large; the .npz holds the same weights
        flops = 2 * 2 * d * f  # per kept assignment: two GEMMs
        return {"key": name, "shape": shape, "experts": experts, "k": k, "cf": cf,
                "tokens": group, "d": d, "f": f, "config": config, "weights": weights,
                "module": module, "module_bf16": module_bf16,
                "module_bf16math": module_bf16math, "input": inputs, "kind": "moe",
                "flops_per_assignment": flops}

    # ---- running ---------------------------------------------------------------------

    def vmoe_bench(self, m, threads, cfs=None, bpr=None, warmup=1, repeat=3, profile=False):
        out = self.path("vmoe-bench.json")
        cmd = [self.tool("vmoe-bench"), m["module"], "--input", m["input"], "--threads",
               str(threads), "--warmup", str(warmup), "--repeat", str(repeat), "--json", out]
        if cfs:
            cmd += ["--capacity-factor", ",".join(str(c) for c in cfs)]
        if bpr is not None:
            cmd += ["--bpr", "on" if bpr else "off"]
        if profile:
            cmd.append("--profile")
        self.sh(cmd)
        with open(out) as f:
            data = json.load(f)
        for r in data["results"]:
            if r["threads"] != threads:
                sys.exit(f"run_benchmarks.py: vmoe-bench ran {r['threads']} threads, "
                         f"not {threads}")
            r["peak_rss_mb"] = data["peak_rss_mb"]
        return data["results"]

    def load_torch(self, threads, m):
        cmd = "load_model" if m["kind"] == "model" else "load_moe"
        self.ask(threads, cmd=cmd, id=m["key"], config=m["config"], weights=m["weights"],
                 input=m["input"])

    def check(self, threads, m, cf=None, bpr=None):
        """Outputs and routing of both sides on the same input."""
        ours = self.path("check-vmoe.npy")
        theirs = self.path("check-torch.npy")
        cmd = [self.tool("vmoe-run"), m["module"], "--input", m["input"], "--output", ours,
               "--quiet", "--threads", str(threads)]
        self.sh(cmd)
        reply = self.ask(threads, cmd="run", id=m["key"], capacity_factor=cf, bpr=bpr,
                         output=theirs)
        a = np.load(ours).reshape(-1)
        b = np.load(theirs).reshape(-1)
        kept_torch = sum(s["kept"] for s in reply["moe"])
        kept_vmoe = self.vmoe_bench(m, threads, warmup=0, repeat=1)[0]["assignments_kept"]
        return {"max_abs_diff": float(np.abs(a - b).max()),
                "max_abs": float(np.abs(b).max()),
                "kept_vmoe": kept_vmoe, "kept_torch": kept_torch}

    def estimate_ms(self, m, threads):
        r = self.vmoe_bench(m, threads, warmup=0, repeat=1)[0]
        return r["median_ms"]

    def repeats(self, est_ms):
        budget = self.args.seconds_per_round * 1e3
        return max(self.args.min_repeat, min(20, int(budget / max(est_ms, 1e-3))))

    def interleaved(self, m, threads, cfs=None, bpr=None, repeat=None, rounds=None):
        """Rounds of vmoe and PyTorch, alternating which goes first. Returns per cf
        (None: the module's default): vmoe and torch medians over rounds and spreads."""
        cfs = cfs or [None]
        if repeat is None:
            repeat = self.repeats(self.estimate_ms(m, threads))
        ours = {cf: [] for cf in cfs}
        theirs = {cf: [] for cf in cfs}
        theirs_all = {cf: [] for cf in cfs}
        kept = {}
        rounds = rounds or self.args.rounds
        for r in range(rounds):
            def run_vmoe():
                res = self.vmoe_bench(m, threads, cfs=None if cfs == [None] else cfs,
                                      bpr=bpr, warmup=1, repeat=repeat)
                for cf, x in zip(cfs, res):
                    ours[cf].append(x)

            def run_torch():
                for cf in cfs:
                    reply = self.ask(threads, cmd="time", id=m["key"], capacity_factor=cf,
                                     bpr=bpr, warmup=1, repeat=repeat)
                    theirs[cf].append(median(reply["ms"]))
                    theirs_all[cf].extend(reply["ms"])
                    kept[cf] = sum(s["kept"] for s in reply["moe"])

            for step in ((run_vmoe, run_torch) if r % 2 == 0 else (run_torch, run_vmoe)):
                step()
        out = {}
        for cf in cfs:
            per_round = ours[cf]
            last = per_round[-1]
            out[cf] = {
                "vmoe_ms": median([x["median_ms"] for x in per_round]),
                "vmoe_p10_ms": min(x["p10_ms"] for x in per_round),
                "vmoe_p90_ms": max(x["p90_ms"] for x in per_round),
                "vmoe_round_ms": [x["median_ms"] for x in per_round],
                "torch_ms": median(theirs[cf]),
                "torch_p10_ms": percentile(theirs_all[cf], 0.1),
                "torch_p90_ms": percentile(theirs_all[cf], 0.9),
                "torch_round_ms": theirs[cf],
                "repeat": repeat, "rounds": rounds,
                "capacity_factor": last["capacity_factor"], "bpr": last["bpr"],
                "assignments": last["assignments"], "assignments_kept": last["assignments_kept"],
                "kept_share": last["assignments_kept_share"],
                "torch_assignments_kept": kept.get(cf),
                "batch": last["batch"], "peak_rss_mb": last["peak_rss_mb"],
            }
            gflop = last["gflops"] * last["median_ms"] / 1e3  # the run's FLOPs
            out[cf]["gflop"] = gflop
            out[cf]["vmoe_gflops"] = gflop / (out[cf]["vmoe_ms"] / 1e3) if gflop else None
            out[cf]["speedup"] = out[cf]["torch_ms"] / out[cf]["vmoe_ms"]
        return out

    def profile(self, m, threads, cfs=None, repeat=3):
        res = self.vmoe_bench(m, threads, cfs=cfs, warmup=1, repeat=repeat, profile=True)
        return [{"capacity_factor": r["capacity_factor"], "median_ms": r["median_ms"],
                 "kept_share": r["assignments_kept_share"],
                 "assignments_kept": r["assignments_kept"],
                 "kernels": r["kernels"]} for r in res]

    # ---- the suites ------------------------------------------------------------------

    def save(self):
        """results.json so far (an interrupted run can still be rendered)."""
        with open(self.path("results.json"), "w") as f:
            json.dump(self.results, f, indent=1)

    def run(self):
        a = self.args
        self.results = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                        "command": public_command(sys.argv[1:]),
                        "quick": a.quick, "threads": a.threads, "rounds": a.rounds,
                        "min_blas_fraction": a.min_blas_fraction}
        self.results["machine"] = self.machine()
        self.results["load_average"] = {"start": os.getloadavg()[0]}
        log("peak:")
        self.results["peak"] = self.peak(a.threads)
        log(f"  {self.results['peak']}")
        self.results["torch"] = {}
        for t in a.threads:
            self.results["torch"][str(t)] = self.torch_check(t)
            log(f"  torch {t} thread(s): {self.results['torch'][str(t)]}")
        self.results["models"] = []
        self.results["profiles"] = []
        models = ["fashion-mnist", "s32"] + ([] if a.quick else ["b16"])
        if a.models:
            models = a.models
        previous = None
        if a.moe_layers_only:
            # The other tables, and the machine readings they were taken with,
            # come from the previous results.json of this folder.
            models = []
            try:
                with open(self.path("results.json")) as f:
                    previous = json.load(f)
            except (OSError, ValueError):
                previous = None
        for key in models:
            self.remeasure_peak()
            for batch in a.batches:
                m = self.prepare_model(key, batch)
                for t in a.threads:
                    self.load_torch(t, m)
                    if t == max(a.threads):
                        chk = self.check(t, m)
                        log(f"  check {key} b{batch}: {chk}")
                    log(f"  time {key} batch {batch} threads {t}")
                    r = self.interleaved(m, t)[None]
                    r.update({"model": key, "threads": t})
                    if t == max(a.threads):
                        r["check"] = chk
                    self.results["models"].append(r)
                    self.save()
                    log(f"    vmoe {r['vmoe_ms']:.2f} ms, torch {r['torch_ms']:.2f} ms, "
                        f"x{r['speedup']:.2f}")
                    if key != "fashion-mnist" and t == min(a.threads):
                        ops = self.ask(t, cmd="profile", id=m["key"],
                                       repeat=max(1, min(3, r["repeat"])))["ops"]
                        r["torch_profile"] = torch_groups(ops)
                    if key != "fashion-mnist" or t == max(a.threads):
                        p = self.profile(m, t, repeat=max(1, min(3, r["repeat"])))[0]
                        p.update({"model": key, "batch": batch, "threads": t,
                                  "flops": group_flops(m["effective"], batch,
                                                       p["assignments_kept"])})
                        self.results["profiles"].append(p)
                    self.ask(t, cmd="unload", id=m["key"])
        if a.forced_core_check and self.results["models"]:
            self.forced_core_check(a.forced_core_check)
            self.save()
        t = min(a.threads)  # the scaling runs where the machine is least noisy
        if "s32" in models and not a.skip_scaling:
            log("capacity factor scaling (S/32, batch 8)")
            m = self.prepare_model("s32", 8)
            self.load_torch(t, m)
            cfs = [2.0, 1.05, 0.5, 0.25, 0.1]
            # The differences between capacity factors are smaller than a busy
            # machine's noise: twice the rounds.
            res = self.interleaved(m, t, cfs=cfs, bpr=True, rounds=2 * a.rounds)
            prof = self.profile(m, t, cfs=cfs, repeat=3)
            rows = []
            for cf, p in zip(cfs, prof):
                row = dict(res[cf])
                row["expert_ms"] = sum(k["ms"] for k in p["kernels"]
                                       if "expert_up" in k["name"] or "expert_down" in k["name"])
                row["profile_ms"] = p["median_ms"]
                row["threads"] = t
                rows.append(row)
            self.results["cf_scaling"] = rows
            self.save()
            self.ask(t, cmd="unload", id=m["key"])
            if not a.quick:
                log("batch scaling (S/32)")
                rows = []
                for batch in (1, 2, 4, 8):
                    m = self.prepare_model("s32", batch)
                    self.load_torch(t, m)
                    r = self.interleaved(m, t)[None]
                    r.update({"threads": t})
                    rows.append(r)
                    self.ask(t, cmd="unload", id=m["key"])
                self.results["batch_scaling"] = rows
                self.save()
        self.results["moe_layers"] = []
        layers = [("S/32", 8)] if a.quick else [("S/32", 8), ("S/32", 32), ("B/16", 8),
                                                   ("B/16", 32)]
        if a.moe_layers is not None:
            layers = a.moe_layers
        for shape, experts in layers:
            m = self.prepare_moe_layer(shape, experts)
            for t in a.threads:
                self.load_torch(t, m)
                if t == max(a.threads):
                    chk = self.check(t, m)
                    log(f"  check MoE {shape} E={experts}: {chk}")
                variants = ["f32", "bf16"] + (["bf16-math"] if m["module_bf16math"] else [])
                for weights in variants:
                    # bf16: the same layer with bf16 expert weights (bf16-math: and
                    # bf16 products), against the same PyTorch (fp32) timed again
                    # alongside it.
                    mw = {"f32": m, "bf16": dict(m, module=m["module_bf16"]),
                          "bf16-math": dict(m, module=m["module_bf16math"])}[weights]
                    r = self.interleaved(mw, t)[None]
                    p = self.profile(mw, t, repeat=max(3, r["repeat"]))[0]
                    expert_ms = sum(k["ms"] for k in p["kernels"]
                                    if "expert_up" in k["name"] or "expert_down" in k["name"])
                    r.update({"shape": shape, "experts": experts, "threads": t,
                              "weights": weights,
                              "tokens": m["tokens"], "d": m["d"], "f": m["f"], "k": m["k"],
                              "expert_ms": expert_ms, "layer_profile_ms": p["median_ms"],
                              "kernels": p["kernels"],
                              "expert_gflops": p["assignments_kept"] * m["flops_per_assignment"]
                              / (expert_ms / 1e3) / 1e9,
                              "layer_gflops": r["assignments_kept"] * m["flops_per_assignment"]
                              / (r["vmoe_ms"] / 1e3) / 1e9})
                    if t == max(a.threads) and weights == "f32":
                        r["check"] = chk
                    self.results["moe_layers"].append(r)
                    self.save()
                    log(f"    {weights}: vmoe {r['vmoe_ms']:.2f} ms, torch {r['torch_ms']:.2f} ms, "
                        f"x{r['speedup']:.2f}, experts {r['expert_gflops']:.1f} GFLOP/s")
                self.ask(t, cmd="unload", id=m["key"])
        self.close()
        self.results["load_average"]["end"] = os.getloadavg()[0]
        self.remeasure_peak()
        if previous and previous.get("models"):
            own = {key: self.results[key] for key in
                   ("date", "command", "peak", "load_average", "torch")}
            self.results = dict(previous, moe_layers=self.results["moe_layers"], moe_run=own)
        return self.results

    def forced_core_check(self, core):
        """The whole-model rows at the fewest threads again, with a PyTorch
        worker started under OPENBLAS_CORETYPE=core (what an OpenBLAS that does
        not know this CPU chooses): torch_check must detect and correct it, and
        the ratios must come out as in the normal run."""
        t = min(self.args.threads)
        log(f"forced-core check: PyTorch started with OPENBLAS_CORETYPE={core}")
        self.close_worker(t)
        self.coretype.pop(t, None)
        saved = os.environ.get("OPENBLAS_CORETYPE")
        os.environ["OPENBLAS_CORETYPE"] = core
        try:
            info = self.torch_check(t)
        finally:
            if saved is None:
                os.environ.pop("OPENBLAS_CORETYPE", None)
            else:
                os.environ["OPENBLAS_CORETYPE"] = saved
        rows = []
        for r in [x for x in self.results["models"] if x["threads"] == t]:
            m = self.prepare_model(r["model"], r["batch"])
            self.load_torch(t, m)
            x = self.interleaved(m, t)[None]
            self.ask(t, cmd="unload", id=m["key"])
            rows.append({"model": r["model"], "batch": r["batch"], "threads": t,
                         "vmoe_ms": x["vmoe_ms"], "torch_ms": x["torch_ms"],
                         "speedup": x["speedup"], "normal_speedup": r["speedup"]})
            log(f"    {r['model']} b{r['batch']}: x{x['speedup']:.2f} "
                f"(normal run x{r['speedup']:.2f})")
        self.results["forced_core_check"] = {"forced": core, "threads": t, "torch": info,
                                             "rows": rows}

    def remeasure_peak(self):
        """The peak again: a busy machine lowers a measurement, never raises it,
        so the best of measurements spread over the run is the closest."""
        again = self.peak(self.args.threads)
        if again and self.results["peak"]:
            for t, v in again.items():
                if t != "isa":
                    self.results["peak"][t] = max(v, self.results["peak"][t])


# ---- reports ---------------------------------------------------------------------------

KERNEL_GROUPS = [
    ("MoE experts", ("moe_expert_up", "moe_expert_down")),
    ("MoE routing + combine", ("moe_gates", "moe_assign", "moe_combine")),
    ("dense MLP", ("mlp_up", "mlp_down")),
    ("attention projections", ("attn_qkv", "attn_out")),
    ("attention core", ("attention",)),
    ("patch embedding", ("patch_embed", "im2col")),
]
OTHER_KERNELS = "other (LayerNorm, head, ...)"


def group_flops(cfg, batch, kept):
    """FLOPs per run of the GEMM kinds of KERNEL_GROUPS (multiply-adds count 2)."""
    p = cfg["patch_size"]
    h, w = cfg["image_size"]
    patches = (h // p) * (w // p)
    t = patches + (1 if cfg["classifier"] == "token" else 0)
    d = cfg["hidden_size"]
    # vmoe's layout ("encoder"), or big_vision's ("transformer").
    encoder = {**(cfg.get("transformer") or {}), **cfg["encoder"]}
    mlp = encoder["mlp_dim"]
    layers = encoder["num_layers"]
    dense_layers = layers - len(cfg["encoder"]["moe"]["layers"])
    return {
        "MoE experts": kept * 4 * d * mlp,
        "dense MLP": batch * t * d * mlp * 4 * dense_layers,
        "attention projections": batch * t * d * d * 2 * 4 * layers,
        "attention core": batch * t * t * d * 4 * layers,
        "patch embedding": batch * patches * p * p * cfg.get("channels", 3) * d * 2,
    }


TORCH_GEMMS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm",
               "aten::matmul", "aten::linear")


def torch_groups(ops):
    """PyTorch's self CPU ms per pass: OpenBLAS GEMMs, GELU, and the rest."""
    gemm = sum(v for k, v in ops.items() if k in TORCH_GEMMS)
    gelu = sum(v for k, v in ops.items() if k == "aten::gelu")
    total = sum(ops.values())
    return {"gemm_ms": gemm, "gelu_ms": gelu, "total_ms": total}


def kernel_group(name):
    """vmoe_s32_e8_last2_moe_expert_up_1 -> "MoE experts"."""
    for group, kinds in KERNEL_GROUPS:
        if any(re.search(rf"(^|_){kind}(_residual)?(_\d+)?$", name) for kind in kinds):
            return group
    return OTHER_KERNELS


def fmt_ms(ms):
    return f"{ms:.3g}" if ms < 10 else f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}"


def pct(x, peak):
    return f" ({100 * x / peak:.0f}%)" if peak else ""


def torch_slowed(res, r):
    """True when PyTorch ran this model and batch slower on more threads than on
    the fewest: other work on the machine, not a property of either side."""
    rows = [x for x in res.get("models", []) if x["model"] == r["model"]
            and x["batch"] == r["batch"]]
    fewest = min(rows, key=lambda x: x["threads"])
    return r["threads"] > fewest["threads"] and r["torch_ms"] > fewest["torch_ms"]


def targets(res):
    """Where the 1.5x target on the presets is met, and for the rows where it is
    not, where vmoe's time goes."""
    out = []
    w = out.append
    single = (res.get("peak") or {}).get("single_core")
    rows = [r for r in res.get("models", []) if r["model"] != "fashion-mnist"]
    if not rows:
        return ""
    met = [r for r in rows if r["speedup"] >= TARGET_RATIO]
    missed = [r for r in rows if r["speedup"] < TARGET_RATIO]
    slowed = [r for r in met if torch_slowed(res, r)]
    w(f"**Target (whole-model fp32 throughput >= {TARGET_RATIO}x PyTorch CPU's on the presets "
      f"at batch 1 and 8): met in {len(met)} of {len(rows)} rows"
      + (f", {len(slowed)} of them (marked †) only because PyTorch ran slower on more "
         "threads than on one" if slowed else "") + ".**")
    w("")
    for r in missed:
        prof = next((p for p in res.get("profiles", []) if p["model"] == r["model"]
                     and p["batch"] == r["batch"] and p["threads"] == r["threads"]), None)
        line = (f"- Not met: {MODELS[r['model']]['label']}, batch {r['batch']}, "
                f"{r['threads']} thread(s): {r['speedup']:.2f}x.")
        if prof:
            agg = {}
            for k in prof["kernels"]:
                g = kernel_group(k["name"])
                agg[g] = agg.get(g, 0) + k["ms"]
            total = sum(agg.values()) or 1
            parts = []
            for g in sorted(agg, key=lambda x: -agg[x])[:3]:
                part = f"{g} {100 * agg[g] / total:.0f}%"
                fl = prof.get("flops", {}).get(g)
                if fl and agg[g] > 0:
                    gf = fl / agg[g] / 1e6
                    part += f" at {gf:.0f} GFLOP/s"
                    if single:
                        part += f" ({100 * gf / (single * r['threads']):.0f}% of peak)"
                parts.append(part)
            line += " vmoe's time: " + ", ".join(parts) + "."
        tp = next((x.get("torch_profile") for x in rows if x["model"] == r["model"]
                   and x["batch"] == r["batch"] and "torch_profile" in x), None)
        if tp and tp["total_ms"] > 0:
            line += (f" PyTorch spends {100 * tp['gemm_ms'] / tp['total_ms']:.0f}% of its "
                     f"time in OpenBLAS GEMMs (`torch.profiler`).")
        torch_info = res.get("torch", {}).get(str(r["threads"]))
        if torch_info:
            line += (f" OpenBLAS's calibration GEMM at {r['threads']} thread(s): "
                     f"{torch_info['calibration_gflops']:.0f} GFLOP/s.")
        w(line)
    if missed:
        w("")
    return "\n".join(out)


def render(res):
    """The generated part of docs/benchmarks.md."""
    out = []
    w = out.append
    mach = res["machine"]
    peak = res.get("peak") or {}
    single = peak.get("single_core")
    isa = host_key(res).split(",")[0]
    w(f"### Host: {host_key(res)}")
    w("")
    w(f"Generated {res['date']} by `{res['command'].strip()}`"
      + (" (quick run)" if res.get("quick") else "") + ".")
    w("")
    w(f"#### Machine ({isa})")
    w("")
    w(f"- CPU: {mach.get('cpu', '?')}, {mach.get('cpus')} logical CPUs"
      + (f", {mach['memory_gb']} GiB" if "memory_gb" in mach else "")
      + (f", L2 {mach['l2_cache']}, L3 {mach['l3_cache']}" if "l3_cache" in mach else "")
      + (f", under a {mach['hypervisor_vendor']} hypervisor" if "hypervisor_vendor" in mach
         else ""))
    w(f"- ISA: {isa}; flags: {' '.join(mach.get('flags', []))}; {mach.get('os', '')}")
    load = res.get("load_average")
    if load:
        w(f"- Load average (1 min) when the run started: {load['start']:.1f}"
          + (f", when it ended: {load['end']:.1f}" if "end" in load else "")
          + f" (on {mach.get('cpus')} CPUs; other work on the machine slows both sides)")
    if single:
        multi = ", ".join(f"{t} threads {peak[t]:.1f}" for t in sorted(peak)
                          if t.isdigit() and t != "1")
        w(f"- Measured fp32 peak (`bench/peak_fma.c`, {peak.get('isa')}, 12 accumulators, "
          "best of measurements spread over the run): "
          f"**{single:.1f} GFLOP/s on one core**" + (f" (all together: {multi})" if multi else "")
          + ". Percentages below are of one core's peak times the thread count.")
    else:
        w("- Peak: not measured (bench/peak_fma.c needs AVX-512, AVX2+FMA or NEON).")
    for t, info in sorted(res.get("torch", {}).items()):
        blas = os.path.basename(info["blas"]) if info["blas"] else "none found"
        info = dict(info, warnings=calibration_warnings(info, int(t), peak,
                                                        res.get("min_blas_fraction", 0.5)))
        w(f"- PyTorch {info['torch']} at {t} thread(s): torch threads {info['torch_threads']}, "
          f"OpenBLAS threads {info['openblas_threads']} ({blas}); calibration GEMM "
          f"400x512x2048: {info['calibration_gflops']:.1f} GFLOP/s{pct(info['calibration_gflops'], single * int(t) if single else None)}"
          + (f" (the comparison stops below {info['calibration_floor_gflops']:.1f})"
             if info.get("calibration_floor_gflops") else "")
          + "".join(f"; **warning: {x}**" for x in info.get("warnings", [])))
        if info.get("openblas_core"):
            forced = info.get("openblas_forced_core")
            env = info.get("coretype_env")
            w(f"  - OpenBLAS kernels: **{info['openblas_core']}**"
              + (f", forced by the harness (OPENBLAS_CORETYPE={forced}): OpenBLAS had chosen "
                 f"{info.get('openblas_detected_core')}, older than this host's best "
                 f"({info.get('openblas_best_core')})" if forced else
                 f" (OpenBLAS's own choice; best for this host: "
                 f"{info.get('openblas_best_core')})"
                 + (f", OPENBLAS_CORETYPE={env} set by the caller" if env else "")))
    w(f"- Protocol: {res['rounds']} alternating rounds of vmoe and PyTorch per row, each "
      "round a warm-up run and N timed runs; times are the median over rounds of each "
      "round's median; the spread is p10-p90 over all timed runs. Batch 1 routes each "
      "image as its own group (vmoe issue #182).")
    w("")

    w(f"#### Whole model, fp32 ({isa})")
    w("")
    w("| model | batch | threads | vmoe ms (p10-p90) | vmoe images/s | vmoe GFLOP/s (% of peak) "
      "| PyTorch ms (p10-p90) | PyTorch images/s | vmoe speedup | >= 1.5x |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for r in res.get("models", []):
        label = MODELS[r["model"]]["label"]
        gf = r.get("vmoe_gflops")
        gfs = f"{gf:.1f}{pct(gf, single * r['threads'] if single else None)}" if gf else "-"
        met = "yes" if r["speedup"] >= TARGET_RATIO else "**no**"
        if r["speedup"] >= TARGET_RATIO and torch_slowed(res, r):
            met += " †"
        w(f"| {label} | {r['batch']} | {r['threads']} | {fmt_ms(r['vmoe_ms'])} "
          f"({fmt_ms(r['vmoe_p10_ms'])}-{fmt_ms(r['vmoe_p90_ms'])}) | "
          f"{r['batch'] / r['vmoe_ms'] * 1e3:.1f} | {gfs} | {fmt_ms(r['torch_ms'])} "
          f"({fmt_ms(r['torch_p10_ms'])}-{fmt_ms(r['torch_p90_ms'])}) | "
          f"{r['batch'] / r['torch_ms'] * 1e3:.1f} | **{r['speedup']:.2f}x** | {met} |")
    w("")
    if any(torch_slowed(res, r) for r in res.get("models", [])):
        w("†: PyTorch took longer on this many threads than on one: its threads wait for "
          "each other at every op, and on a busy machine each wait costs a time slice. "
          "The ratio measures the machine's load more than either implementation.")
        w("")
    w(targets(res))
    checks = [r for r in res.get("models", []) if "check" in r]
    if checks:
        w("Outputs checked before timing (same weights and images, default capacity "
          "factor): max |vmoe - PyTorch| of the logits, and the expert assignments kept "
          "by each side.")
        w("")
        w("| model | batch | max abs diff | max abs logit | kept: vmoe / PyTorch |")
        w("|---|---|---|---|---|")
        for r in checks:
            c = r["check"]
            w(f"| {MODELS[r['model']]['label']} | {r['batch']} | {c['max_abs_diff']:.2g} | "
              f"{c['max_abs']:.3g} | {c['kept_vmoe']} / {c['kept_torch']} |")
        w("")

    fc = res.get("forced_core_check")
    if fc:
        info = fc["torch"]
        w(f"#### OpenBLAS forced to {fc['forced']} on the peer, detected and corrected "
          f"({isa})")
        w("")
        w(f"The rows above again, {fc['threads']} thread(s), with the PyTorch worker "
          f"started under `OPENBLAS_CORETYPE={fc['forced']}` (what an OpenBLAS that does "
          f"not know the CPU picks): the harness read {info.get('openblas_detected_core')} "
          f"(calibration GEMM {info.get('calibration_gflops_detected', 0):.1f} GFLOP/s), "
          f"restarted the worker on {info.get('openblas_core')} (calibration GEMM "
          f"{info['calibration_gflops']:.1f} GFLOP/s) and timed again. Uncorrected, "
          "PyTorch's GEMMs would have run at the first rate.")
        w("")
        w("| model | batch | threads | vmoe speedup, normal run | vmoe speedup, forced and "
          "corrected | PyTorch ms |")
        w("|---|---|---|---|---|---|")
        for r in fc["rows"]:
            w(f"| {MODELS[r['model']]['label']} | {r['batch']} | {r['threads']} | "
              f"{r['normal_speedup']:.2f}x | {r['speedup']:.2f}x | {fmt_ms(r['torch_ms'])} |")
        w("")

    profiles = [p for p in res.get("profiles", []) if p["model"] != "fashion-mnist"]
    if profiles:
        w(f"#### Where vmoe's time goes (`vmoe-bench --profile`, {isa})")
        w("")
        w("Kernel time by kind, as a share of the sum of kernel times (ms per run in "
          "brackets); the GEMM kinds also give their GFLOP/s.")
        w("")
        order = [g for g, _ in KERNEL_GROUPS] + [OTHER_KERNELS]
        w("| model | batch | threads | " + " | ".join(order) + " |")
        w("|---|---|---|" + "---|" * len(order))
        for p in profiles:
            agg = {}
            for k in p["kernels"]:
                group = kernel_group(k["name"])
                agg[group] = agg.get(group, 0) + k["ms"]
            total = sum(agg.values()) or 1
            flops = p.get("flops", {})
            cells = []
            for g in order:
                ms = agg.get(g, 0)
                cell = f"{100 * ms / total:.0f}% ({fmt_ms(ms)} ms"
                if g in flops and ms > 0:
                    cell += f", {flops[g] / ms / 1e6:.0f} GFLOP/s"
                cells.append(cell + ")")
            w(f"| {MODELS[p['model']]['label']} | {p['batch']} | {p['threads']} | "
              + " | ".join(cells) + " |")
        w("")

    rows = res.get("cf_scaling")
    if rows:
        w(f"#### Capacity factor (V-MoE-S/32, batch 8, BPR on, {rows[0]['threads']} "
          f"thread(s), {isa})")
        w("")
        w("The module is compiled once for capacity factor 2.0; each call lowers it. "
          "Expected time: the time at 2.0 minus the expert kernels' share that the "
          f"lower capacity no longer computes. {rows[0].get('rounds', res['rounds'])} "
          "rounds; the expert-kernel times come from one profiled run per capacity "
          "factor.")
        w("")
        w("| capacity factor | expert assignments kept | vmoe ms | expected ms | "
          "vmoe expert kernels ms | PyTorch ms | vmoe speedup |")
        w("|---|---|---|---|---|---|---|")
        base = rows[0]
        for r in rows:
            expected = (base["vmoe_ms"] - base["expert_ms"]
                        + base["expert_ms"] * r["kept_share"] / base["kept_share"])
            w(f"| {r['capacity_factor']:g} | {100 * r['kept_share']:.1f}% | "
              f"{fmt_ms(r['vmoe_ms'])} | {fmt_ms(expected)} | {fmt_ms(r['expert_ms'])} | "
              f"{fmt_ms(r['torch_ms'])} | {r['speedup']:.2f}x |")
        w("")

    rows = res.get("batch_scaling")
    if rows:
        w(f"#### Batch size (V-MoE-S/32, {rows[0]['threads']} thread(s), {isa})")
        w("")
        w("| batch | vmoe ms | vmoe images/s | PyTorch ms | PyTorch images/s | vmoe speedup |")
        w("|---|---|---|---|---|---|")
        for r in rows:
            w(f"| {r['batch']} | {fmt_ms(r['vmoe_ms'])} | {r['batch'] / r['vmoe_ms'] * 1e3:.1f} "
              f"| {fmt_ms(r['torch_ms'])} | {r['batch'] / r['torch_ms'] * 1e3:.1f} | "
              f"{r['speedup']:.2f}x |")
        w("")

    rows = res.get("moe_layers")
    if rows:
        w("#### One sparse MoE layer (k = 2, capacity factor 1.05, one group of 8 images, "
          f"{isa})")
        w("")
        w("Expert GEMM GFLOP/s: 4·D·F FLOPs per kept assignment over the time of the "
          "expert-up and expert-down kernels (`vmoe-bench --profile`). Layer: router, "
          "top-k, slot assignment, dispatch, experts, combine; PyTorch is "
          "`vmoe_torch.moe_mlp` (index dispatch, `baddbmm` experts) on the same weights "
          "and tokens.")
        w("")
        w("Weights f32: the model as compiled by default; bf16: the same layer compiled "
          "with `--expert-weights=bf16` (bf16 expert weights widened to f32 as they are "
          "loaded, f32 accumulation); bf16-math: compiled with `--expert-math=bf16` (bf16 "
          "weights, expert inputs and GELU output, bf16 products summed in f32; only on "
          "hosts with AVX512-BF16 or AMX). Each against the same PyTorch (fp32 weights) "
          "timed again alongside it.")
        w("")
        moe_run = res.get("moe_run")
        if moe_run:
            # Rerun by --moe-layers-only: this table's own readings.
            single = (moe_run.get("peak") or {}).get("single_core")
            load = moe_run.get("load_average") or {}
            torch1 = (moe_run.get("torch") or {}).get("1") or {}
            w(f"This table was rerun on {moe_run['date']} by `{moe_run['command'].strip()}` "
              f"(the tables above are from {res['date']}): load average "
              f"{load.get('start', 0):.1f} to {load.get('end', 0):.1f}, fp32 peak "
              f"{single or 0:.1f} GFLOP/s on one core (the percentages below are of it)"
              + (f", OpenBLAS calibration GEMM at 1 thread "
                 f"{torch1['calibration_gflops']:.1f} GFLOP/s"
                 if "calibration_gflops" in torch1 else "") + ".")
            w("")
        w("| shape | tokens x D x F | E | threads | weights | kept | "
          "expert GEMMs GFLOP/s (% of peak) | vmoe layer ms | PyTorch layer ms | "
          "vmoe speedup | max abs diff |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            diff = f"{r['check']['max_abs_diff']:.2g}" if "check" in r else ""
            w(f"| {r['shape']} | {r['tokens']} x {r['d']} x {r['f']} | {r['experts']} | "
              f"{r['threads']} | {r.get('weights', 'f32')} | {100 * r['kept_share']:.1f}% | "
              f"{r['expert_gflops']:.1f}"
              f"{pct(r['expert_gflops'], single * r['threads'] if single else None)} | "
              f"{fmt_ms(r['vmoe_ms'])} | {fmt_ms(r['torch_ms'])} | {r['speedup']:.2f}x | "
              f"{diff} |")
        w("")
    if res.get("moe_layers") is not None:
        w(bf16_goal(res))
        w("")
    return "\n".join(out)


def calibration_warnings(info, threads, peak, fraction):
    """The worker's warnings, with the calibration GEMM judged against the best
    peak of the whole run (the check at the start saw the first reading)."""
    out = [x for x in info.get("warnings", []) if "above" not in x]
    best = peak.get(str(threads)) or (peak.get("single_core") or 0) * threads
    if best:
        gf = info["calibration_gflops"]
        if gf > 1.15 * best:
            out.append(f"a {threads}-thread GEMM ran at {gf:.0f} GFLOP/s, above {threads} "
                       "core(s)' peak: the thread limit does not hold")
        elif gf < fraction * best:
            out.append(f"the calibration GEMM ran below {fraction:g} of the best peak "
                       f"measured during the run ({best:.1f} GFLOP/s): the machine was too "
                       "busy, or the BLAS is slow; these ratios flatter vmoe")
    return out


def bf16_units(mach):
    """Whether the host multiplies bf16 in hardware (AVX512-BF16 or AMX-BF16)."""
    flags = set(mach.get("all_flags") or mach.get("flags") or [])
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def bf16_goal(res):
    """The bf16 goal's line: --expert-math=bf16 layers against PyTorch fp32."""
    rows = [r for r in res.get("moe_layers", []) if r.get("weights") == "bf16-math"
            and r["threads"] == 1]
    if not rows:
        if bf16_units(res.get("machine", {})):
            return ("**bf16 goal (one MoE layer with `--expert-math=bf16` at least "
                    f"{BF16_TARGET_RATIO:g}x PyTorch fp32's, 1 thread): not run.**")
        return ("**bf16 goal (one MoE layer with `--expert-math=bf16` at least "
                f"{BF16_TARGET_RATIO:g}x PyTorch fp32's): could not be measured on this "
                "host: its CPU has neither AVX512-BF16 nor AMX.**")
    met = [r for r in rows if r["speedup"] >= BF16_TARGET_RATIO]
    ops = res.get("bf16_instructions") or {}
    how = ""
    if ops:
        how = (f" The bf16 kernels use `vdpbf16ps` ({ops.get('vdpbf16ps', 0)} in the "
               f"S/32 layer's assembly) and {ops.get('tdpbf16ps', 0)} AMX tile "
               "multiplies (`tdpbf16ps`).")
    return (f"**bf16 goal (one MoE layer with `--expert-math=bf16` at least "
            f"{BF16_TARGET_RATIO:g}x PyTorch fp32's, 1 thread): met in {len(met)} of "
            f"{len(rows)} rows** (" + ", ".join(
                f"{r['shape']} E={r['experts']} {r['speedup']:.2f}x" for r in rows)
            + ")." + how)


def host_key(res):
    """The kind of host a run describes: its ISA and CPU model. docs/benchmarks.md
    keeps one section per key; a run rewrites only its own host's."""
    mach = res.get("machine", {})
    isa = mach.get("isa") or openblas_core.isa_name(mach.get("flags", []),
                                                    mach.get("arch", "x86_64"))
    return f"{isa}, {mach.get('cpu', 'unknown CPU')}"


def begin_marker(key):
    return f"{BEGIN[:-4]} [{key}] -->"


def end_marker(key):
    return f"{END[:-4]} [{key}] -->"


def update_docs(text, key, path=DOCS):
    """Replaces the section of host `key` between its markers, or adds one after
    the last host's section; every other host's section stays as it is."""
    with open(path) as f:
        doc = f.read()
    begin, end = begin_marker(key), end_marker(key)
    section = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        doc = head + section + tail
    else:
        ends = [m.end() for m in re.finditer(re.escape(END[:-4]) + r"( \[[^\]]*\])? -->",
                                             doc)]
        if not ends:
            sys.exit(f"run_benchmarks.py: {path} lacks the markers of the generated part")
        at = ends[-1]
        doc = doc[:at] + "\n\n" + section + doc[at:]
    with open(path, "w") as f:
        f.write(doc)
    log(f"rewrote the section of {key} in {path}")


def summary(res):
    """The ratios, for the terminal."""
    lines = ["", "vmoe / PyTorch CPU (fp32, same weights, images and threads):"]
    for r in res.get("models", []):
        lines.append(f"  {MODELS[r['model']]['label']:<26} batch {r['batch']} "
                     f"threads {r['threads']}: vmoe {r['vmoe_ms']:9.2f} ms  PyTorch "
                     f"{r['torch_ms']:9.2f} ms  speedup {r['speedup']:5.2f}x")
    for r in res.get("moe_layers", []):
        lines.append(f"  MoE layer {r['shape']} E={r['experts']:<2} {r.get('weights', 'f32'):<4}      "
                     f"threads {r['threads']}: vmoe {r['vmoe_ms']:9.2f} ms  PyTorch "
                     f"{r['torch_ms']:9.2f} ms  speedup {r['speedup']:5.2f}x  expert GEMMs "
                     f"{r['expert_gflops']:.1f} GFLOP/s")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build folder with bin/vmoe-compile, vmoe-bench, vmoe-run")
    ap.add_argument("--work", help="where modules, weights and results go "
                                   "(default: BUILD/bench)")
    ap.add_argument("--quick", action="store_true",
                    help="a short run: bundled model and S/32, 1 round, one MoE layer")
    ap.add_argument("--threads", default=None, help="thread counts (default 1,2)")
    ap.add_argument("--batches", default="1,8", help="batch sizes of the model table")
    ap.add_argument("--models", default=None, help="subset of fashion-mnist,s32,b16")
    ap.add_argument("--rounds", type=int, default=None,
                    help="alternating rounds per row (default 3, --quick 1)")
    ap.add_argument("--seconds-per-round", type=float, default=None,
                    help="timed seconds per side and round, sets the runs per round "
                         "(default 2, --quick 1)")
    ap.add_argument("--min-repeat", type=int, default=None,
                    help="fewest timed runs per round (default 2, --quick 1)")
    ap.add_argument("--moe-layers", default=None,
                    help="MoE layer shapes as SHAPE:E,... (S/32:8,S/32:32,B/16:8,B/16:32; "
                         "'none' for none; default all, --quick S/32:8)")
    ap.add_argument("--skip-scaling", action="store_true",
                    help="leave out the capacity and batch scaling")
    ap.add_argument("--moe-layers-only", action="store_true",
                    help="run only the MoE layer table; the other tables are kept from the "
                         "results.json already in the work folder")
    ap.add_argument("--openblas-core", default="auto",
                    help="PyTorch's OpenBLAS kernels: auto (the default: when OpenBLAS "
                         "chose a core older than the best this host runs, force the best), "
                         "keep (what OpenBLAS chose), or a core name (OPENBLAS_CORETYPE)")
    ap.add_argument("--forced-core-check", metavar="CORE",
                    help="after the whole-model table, time its rows again with PyTorch "
                         "started under OPENBLAS_CORETYPE=CORE (e.g. Prescott): the harness "
                         "must detect and correct it, giving the same ratios")
    ap.add_argument("--min-blas-fraction", type=float, default=0.5,
                    help="stop when PyTorch's calibration GEMM runs below this share of the "
                         "measured peak (default 0.5)")
    ap.add_argument("--update-docs", action="store_true",
                    help="rewrite this host's section of docs/benchmarks.md (one section "
                         "per kind of host, keyed by ISA and CPU model)")
    ap.add_argument("--from-json", help="render an earlier results.json instead of running")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            res = json.load(f)
    else:
        args.build = os.path.abspath(args.build)
        args.work = args.work or os.path.join(args.build, "bench")
        args.threads = [int(t) for t in (args.threads or "1,2").split(",")]
        args.batches = [int(b) for b in args.batches.split(",")]
        args.models = args.models.split(",") if args.models else None
        if args.moe_layers is not None:
            try:
                args.moe_layers = [] if args.moe_layers == "none" else [
                    (shape, int(e)) for shape, e in
                    (item.split(":") for item in args.moe_layers.split(","))]
            except ValueError:
                args.moe_layers = [("?", 0)]
            if any(shape not in MOE_SHAPES or e < 1 for shape, e in args.moe_layers):
                sys.exit("run_benchmarks.py: --moe-layers takes SHAPE:E,... with SHAPE in "
                         f"{','.join(MOE_SHAPES)}, e.g. S/32:8,B/16:32, or none")
        if args.models and any(m not in MODELS for m in args.models):
            sys.exit(f"run_benchmarks.py: --models takes {','.join(MODELS)}")
        if args.rounds is None:
            args.rounds = 1 if args.quick else 3
        if args.seconds_per_round is None:
            args.seconds_per_round = 1.0 if args.quick else 2.0
        if args.min_repeat is None:
            args.min_repeat = 1 if args.quick else 2
        harness = Harness(args)
        try:
            res = harness.run()
        finally:
            harness.close()
        harness.save()
    text = render(res)
    if not args.from_json:
        with open(os.path.join(args.work, "benchmarks.md"), "w") as f:
            f.write(text + "\n")
    print(summary(res))
    if args.update_docs:
        update_docs(text, host_key(res))
    if not args.from_json:
        print(f"\nresults: {os.path.join(args.work, 'results.json')}, "
              f"{os.path.join(args.work, 'benchmarks.md')}")


if __name__ == "__main__":
    main()
