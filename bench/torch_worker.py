#!/usr/bin/python3
"""The PyTorch side of the benchmarks, in a process of its own per thread count.

  torch_worker.py THREADS

Debian's python3-torch does its GEMMs in OpenBLAS (libopenblas0-pthread),
whose thread pool ignores torch.set_num_threads(): it must be sized through
the environment before torch (and so OpenBLAS) is loaded. This process sets
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS to THREADS first,
then imports torch, and reports the thread counts that torch and OpenBLAS
actually use, so a harness can check that the comparison is fair.

It reads one JSON command per line on stdin and answers one JSON line on
stdout (anything else printed goes to stderr):

  {"cmd": "info"}
      torch version, thread counts, the BLAS library loaded, OpenBLAS's core
      (openblas_get_corename: the kernels it chose, or that OPENBLAS_CORETYPE
      forced) and the GFLOP/s of a calibration GEMM (400x512 by 512x2048,
      fp32)
  {"cmd": "load_model", "id": ID, "config": PATH, "weights": NPZ, "input": NPY}
      a V-MoE (python/vmoe_torch.py) with its weights and images
  {"cmd": "load_moe", "id": ID, "config": PATH, "weights": NPZ, "input": NPY}
      one sparse MoE layer (vmoe_torch.moe_mlp) on tokens (B, T, D); the
      config holds the "encoder"/"moe" part of a vmoe config
  {"cmd": "run", "id": ID, "capacity_factor": X, "bpr": B, "output": NPY}
      one forward pass; writes the output, answers the routing statistics
  {"cmd": "time", "id": ID, "capacity_factor": X, "bpr": B, "warmup": N,
   "repeat": N}
      milliseconds of each timed forward pass
  {"cmd": "profile", "id": ID, "repeat": N}
      torch.profiler over N forward passes: self CPU ms per pass of each op
  {"cmd": "init_weights", "config": PATH, "output": NPZ, "seed": N}
      random weights for a config, as vmoe / vit_jax initialise them (with
      a random head, so that the logits of both sides are worth comparing)
  {"cmd": "unload", "id": ID}
  {"cmd": "quit"}

X and B may be null (the config's values). Errors answer {"error": TEXT}.
"""
import os
import sys

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 1
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(THREADS)

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import openblas_core  # noqa: E402  (bench/, this script's folder)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import vmoe_torch  # noqa: E402

torch.set_num_threads(THREADS)


def calibration_gflops(min_repeat=20, seconds=2.0):
    """Best GFLOP/s of a 400x512 by 512x2048 fp32 matmul (an S/32 MLP GEMM),
    over at least min_repeat runs and up to `seconds`: on a busy machine some
    runs are not interrupted, and the best of them is the BLAS's speed."""
    a = torch.rand(400, 512)
    b = torch.rand(512, 2048)
    for _ in range(3):
        torch.mm(a, b)
    best = float("inf")
    start = time.perf_counter()
    n = 0
    while n < min_repeat or (time.perf_counter() - start < seconds and n < 1000):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
        n += 1
    return 2.0 * 400 * 512 * 2048 / best / 1e9


class Model:
    def __init__(self, kind, config, weights, inputs):
        self.kind = kind
        self.cfg = vmoe_torch.load_config(config)
        self.params = vmoe_torch.load_npz(weights)
        self.x = torch.from_numpy(np.load(inputs).astype(np.float32))

    def forward(self, capacity_factor, bpr):
        if self.kind == "model":
            out, info = vmoe_torch.forward(self.params, self.x, self.cfg,
                                           capacity_factor=capacity_factor,
                                           batch_priority=bpr)
            return out, info["moe"]
        out, stats, _ = vmoe_torch.moe_mlp(self.params, "", self.x, self.cfg,
                                           capacity_factor=capacity_factor,
                                           batch_priority=bpr)
        return out, [stats]


def init_weights(config, output, seed):
    cfg = vmoe_torch.load_config(config)
    gen = torch.Generator().manual_seed(seed)
    params = vmoe_torch.init_params(cfg, gen)
    d = cfg["hidden_size"]
    features = d
    rep = cfg.get("representation_size")
    if rep is not None:
        bound = (6.0 / (d + rep)) ** 0.5
        params["pre_logits/kernel"] = (torch.rand(d, rep, generator=gen) * 2 - 1) * bound
        params["pre_logits/bias"] = torch.zeros(rep)
        features = rep
    # vit_jax starts the head at zero; random values make the logits comparable.
    params["head/kernel"] = torch.randn(features, cfg["num_classes"], generator=gen) * 0.02
    vmoe_torch.save_npz(params, output)


def answer(out, obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()


def main():
    out = sys.stdout
    sys.stdout = sys.stderr  # only answers on the real stdout
    models = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            cmd = req["cmd"]
            if cmd == "quit":
                answer(out, {"ok": True})
                break
            if cmd == "info":
                blas = openblas_core.openblas_info()
                answer(out, {"torch": torch.__version__, "threads": THREADS,
                             "torch_threads": torch.get_num_threads(),
                             "blas": blas["blas"], "openblas_threads": blas["threads"],
                             "openblas_core": blas["core"],
                             "openblas_config": blas["config"],
                             "coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
                             "calibration_gflops": calibration_gflops(
                                 seconds=req.get("calibration_seconds", 2.0))})
            elif cmd in ("load_model", "load_moe"):
                kind = "model" if cmd == "load_model" else "moe"
                models[req["id"]] = Model(kind, req["config"], req["weights"], req["input"])
                answer(out, {"ok": True})
            elif cmd == "profile":
                m = models[req["id"]]
                n = req.get("repeat", 1)
                with torch.no_grad():
                    m.forward(None, None)
                    with torch.profiler.profile() as prof:
                        for _ in range(n):
                            m.forward(None, None)
                ops = {e.key: e.self_cpu_time_total / 1e3 / n for e in prof.key_averages()}
                answer(out, {"ops": ops})
            elif cmd == "init_weights":
                init_weights(req["config"], req["output"], req.get("seed", 0))
                answer(out, {"ok": True})
            elif cmd == "unload":
                models.pop(req["id"], None)
                answer(out, {"ok": True})
            elif cmd == "run":
                m = models[req["id"]]
                with torch.no_grad():
                    y, stats = m.forward(req.get("capacity_factor"), req.get("bpr"))
                np.save(req["output"], y.numpy())
                answer(out, {"moe": stats})
            elif cmd == "time":
                m = models[req["id"]]
                cf, bpr = req.get("capacity_factor"), req.get("bpr")
                times = []
                stats = None
                with torch.no_grad():
                    for _ in range(req.get("warmup", 1)):
                        m.forward(cf, bpr)
                    for _ in range(req.get("repeat", 5)):
                        t0 = time.perf_counter()
                        _, stats = m.forward(cf, bpr)
                        times.append((time.perf_counter() - t0) * 1e3)
                answer(out, {"ms": times, "moe": stats})
            else:
                answer(out, {"error": f"unknown command {cmd!r}"})
        except Exception as e:  # report, keep serving
            answer(out, {"error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()
