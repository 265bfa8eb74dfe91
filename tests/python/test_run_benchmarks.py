"""Checks of the benchmark harness (bench/run_benchmarks.py, bench/torch_worker.py).

What the comparison's fairness rests on: the PyTorch side runs with the
requested number of OpenBLAS threads, and computes the same MoE layer as
vmoe_torch; and the parts of the report that are plain arithmetic.

Run: /usr/bin/python3 tests/python/test_run_benchmarks.py   (exits non-zero on failure)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import run_benchmarks as rb  # noqa: E402


class Worker:
    """bench/torch_worker.py THREADS, spoken to as the harness does."""

    def __init__(self, threads):
        env = dict(os.environ)
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(name, None)  # the worker must set them itself
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "bench", "torch_worker.py"), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.ask(cmd="quit")
        self.proc.wait(timeout=60)
        self.proc.stdin.close()
        self.proc.stdout.close()


class WorkerThreadsTest(unittest.TestCase):
    def test_openblas_gets_the_requested_threads(self):
        for threads in (1, 2):
            w = Worker(threads)
            try:
                info = w.ask(cmd="info")
            finally:
                w.close()
            self.assertEqual(info["threads"], threads)
            self.assertEqual(info["torch_threads"], threads)
            if info["blas"] and "openblas" in os.path.basename(info["blas"]):
                # OpenBLAS caps its pool at the machine's CPUs.
                self.assertEqual(info["openblas_threads"], min(threads, os.cpu_count()))
            self.assertGreater(info["calibration_gflops"], 0)
            self.assertIsNotNone(info["openblas_core"], "PyTorch does not use OpenBLAS")


def bare_harness(threads=1, min_fraction=0.5, openblas_core="auto"):
    """A Harness without built tools: enough for its PyTorch-side checks."""
    h = rb.Harness.__new__(rb.Harness)
    h.args = argparse.Namespace(openblas_core=openblas_core, min_blas_fraction=min_fraction,
                                threads=[threads])
    h.workers, h.coretype, h.prepared = {}, {}, {}
    h.work = tempfile.mkdtemp()
    h.results = {"machine": rb.Harness.machine(h)}
    return h


class TorchCheckTest(unittest.TestCase):
    """The harness corrects an old OpenBLAS core and stops on a slow BLAS."""

    def setUp(self):
        self.saved = os.environ.get("OPENBLAS_CORETYPE")

    def tearDown(self):
        os.environ.pop("OPENBLAS_CORETYPE", None)
        if self.saved is not None:
            os.environ["OPENBLAS_CORETYPE"] = self.saved

    def test_forced_prescott_is_corrected_and_recorded(self):
        os.environ["OPENBLAS_CORETYPE"] = "Prescott"
        h = bare_harness()
        best = rb.openblas_core.best_core(h.results["machine"]["all_flags"],
                                          h.results["machine"]["vendor"])
        if best is None or rb.openblas_core.CORE_RANKS[best] <= 1:
            self.skipTest("this host runs nothing newer than Prescott")
        h.results["peak"] = None  # no calibration floor in this test
        try:
            info = h.torch_check(1)
        finally:
            h.close()
        self.assertEqual(info["openblas_detected_core"], "Prescott")
        self.assertEqual(info["openblas_forced_core"], best)
        self.assertEqual(info["openblas_core"], best)
        self.assertEqual(info["coretype_env"], best)
        text = rb.render({"machine": h.results["machine"], "torch": {"1": info},
                          "date": "d", "command": "c", "rounds": 1})
        self.assertIn(f"OpenBLAS kernels: **{best}**, forced by the harness", text)
        self.assertIn("OpenBLAS had chosen Prescott", text)

    def test_keep_leaves_the_core_alone(self):
        os.environ["OPENBLAS_CORETYPE"] = "Prescott"
        h = bare_harness(openblas_core="keep")
        h.results["peak"] = None
        try:
            info = h.torch_check(1)
        finally:
            h.close()
        self.assertEqual(info["openblas_core"], "Prescott")
        self.assertIsNone(info["openblas_forced_core"])

    def test_calibration_below_half_the_peak_stops(self):
        h = bare_harness()
        # A peak no BLAS reaches half of: the comparison must stop, not warn.
        h.results["peak"] = {"single_core": 1e6, "1": 1e6, "isa": "test"}
        try:
            with self.assertRaises(SystemExit) as stop:
                h.torch_check(1)
        finally:
            h.close()
        self.assertIn("below 0.5 of the measured peak", str(stop.exception))

    def test_moe_layer_matches_numpy(self):
        # A tiny layer in the harness's files: 2 images of 3 tokens, D=4, F=8,
        # E=2, k=1, capacity 8 per expert (nothing dropped): each token goes
        # through its top-1 expert's MLP, in bf16 as vmoe dispatches, times its gate.
        rng = np.random.default_rng(3)
        d, f, e = 4, 8, 2
        params = {"Router/dense/kernel": rng.standard_normal((d, e)).astype(np.float32),
                  "Mlp/Dense_0/kernel": rng.standard_normal((e, d, f)).astype(np.float32),
                  "Mlp/Dense_0/bias": rng.standard_normal((e, f)).astype(np.float32),
                  "Mlp/Dense_1/kernel": rng.standard_normal((e, f, d)).astype(np.float32),
                  "Mlp/Dense_1/bias": rng.standard_normal((e, d)).astype(np.float32)}
        x = rng.standard_normal((2, 3, d)).astype(np.float32)
        cfg = {"hidden_size": d, "encoder": {"moe": {
            "num_experts": e, "group_size": 6,
            "router": {"num_selected_experts": 1, "noise_std": 1.0,
                       "dispatcher": {"capacity_factor": 2.0, "batch_priority": False,
                                      "bfloat16": False}}}}}
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(os.path.join(tmp, "w.npz"), **params)
            np.save(os.path.join(tmp, "x.npy"), x)
            with open(os.path.join(tmp, "c.json"), "w") as fh:
                json.dump(cfg, fh)
            w = Worker(1)
            try:
                self.assertEqual(w.ask(cmd="load_moe", id="m", config=os.path.join(tmp, "c.json"),
                                       weights=os.path.join(tmp, "w.npz"),
                                       input=os.path.join(tmp, "x.npy")), {"ok": True})
                reply = w.ask(cmd="run", id="m", capacity_factor=None, bpr=None,
                              output=os.path.join(tmp, "y.npy"))
                timed = w.ask(cmd="time", id="m", capacity_factor=None, bpr=None,
                              warmup=0, repeat=2)
            finally:
                w.close()
            y = np.load(os.path.join(tmp, "y.npy"))
        self.assertEqual(reply["moe"][0]["kept"], 6)
        self.assertEqual(len(timed["ms"]), 2)
        tokens = x.reshape(6, d).astype(np.float64)
        logits = tokens @ params["Router/dense/kernel"]
        gates = np.exp(logits - logits.max(-1, keepdims=True))
        gates /= gates.sum(-1, keepdims=True)
        want = np.zeros_like(tokens)
        for s in range(6):
            ex = int(np.argmax(gates[s]))
            h = tokens[s] @ params["Mlp/Dense_0/kernel"][ex] + params["Mlp/Dense_0/bias"][ex]
            h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
            out = h @ params["Mlp/Dense_1/kernel"][ex] + params["Mlp/Dense_1/bias"][ex]
            want[s] = gates[s, ex] * out
        np.testing.assert_allclose(y.reshape(6, d), want, rtol=1e-4, atol=1e-4)


class ReportTest(unittest.TestCase):
    def test_kernel_groups(self):
        cases = {"vmoe_s32_e8_last2_moe_expert_up_1": "MoE experts",
                 "vmoe_s32_e8_last2_moe_expert_down_0": "MoE experts",
                 "vmoe_s32_e8_last2_moe_combine_residual_1": "MoE routing + combine",
                 "vmoe_s32_e8_last2_moe_gates_0": "MoE routing + combine",
                 "vmoe_s32_e8_last2_mlp_up_5": "dense MLP",
                 "vmoe_s32_e8_last2_attn_qkv_7": "attention projections",
                 "vmoe_s32_e8_last2_attn_out_0": "attention projections",
                 "vmoe_s32_e8_last2_attention_3": "attention core",
                 "vmoe_s32_e8_last2_im2col_0": "patch embedding",
                 "vmoe_s32_e8_last2_layer_norm_12": rb.OTHER_KERNELS,
                 "vmoe_s32_e8_last2_head_0": rb.OTHER_KERNELS}
        for name, group in cases.items():
            self.assertEqual(rb.kernel_group(name), group, name)

    def test_group_flops_of_s32(self):
        cfg = {"patch_size": 32, "image_size": [224, 224], "classifier": "token",
               "hidden_size": 512, "channels": 3,
               "transformer": {"mlp_dim": 2048, "num_layers": 8},
               "encoder": {"moe": {"layers": [5, 7]}}}
        f = rb.group_flops(cfg, batch=8, kept=1000)
        # 49 patches + class token = 50 tokens per image.
        self.assertEqual(f["MoE experts"], 1000 * 4 * 512 * 2048)
        self.assertEqual(f["dense MLP"], 8 * 50 * 512 * 2048 * 4 * 6)
        self.assertEqual(f["attention projections"], 8 * 50 * 512 * 512 * 8 * 8)
        self.assertEqual(f["attention core"], 8 * 50 * 50 * 512 * 4 * 8)
        self.assertEqual(f["patch embedding"], 8 * 49 * 32 * 32 * 3 * 512 * 2)

    def test_moe_table_has_a_weights_column(self):
        row = {"shape": "S/32", "tokens": 400, "d": 512, "f": 2048, "experts": 8,
               "threads": 1, "kept_share": 0.998, "expert_gflops": 50.0,
               "vmoe_ms": 40.0, "torch_ms": 60.0, "speedup": 1.5}
        res = {"machine": {"cpus": 2}, "peak": {"single_core": 100.0, "1": 100.0},
               "date": "2026-11-29 02:00", "command": "bench/run_benchmarks.py",
               "rounds": 3,
               "moe_run": {"date": "2026-11-29 03:00", "command": "bench/run_benchmarks.py "
                           "--moe-layers-only", "peak": {"single_core": 80.0},
                           "load_average": {"start": 1.0, "end": 1.5},
                           "torch": {"1": {"calibration_gflops": 60.0}}},
               "moe_layers": [row, dict(row, weights="bf16", vmoe_ms=30.0, speedup=2.0)]}
        lines = rb.render(res).splitlines()
        table = [l for l in lines if l.startswith("| S/32 ")]
        # Rows of an older results.json (no weights key) are f32.
        self.assertEqual(table[0].split(" | ")[4], "f32")
        self.assertEqual(table[1].split(" | ")[4], "bf16")
        # The percentages are of the rerun's own peak (80), not the page's (100).
        self.assertIn("50.0 (62%)", table[0])
        self.assertIn("2.00x", table[1])
        self.assertIn("This table was rerun on 2026-11-29 03:00", "\n".join(lines))

    def test_command_without_machine_paths(self):
        self.assertEqual(rb.public_command(["--build", "/x/b", "--quick", "--work=/y",
                                            "--update-docs"]),
                         "bench/run_benchmarks.py --quick --update-docs")

    def test_update_docs_rewrites_only_its_hosts_section(self):
        avx2 = "AVX2+FMA, AMD EPYC"
        avx512 = "AVX-512 + AVX512-BF16 + AMX-BF16, Intel(R) Xeon(R) Processor"
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "doc.md")
            with open(path, "w") as fh:
                fh.write(f"intro\n{rb.begin_marker(avx2)}\nold avx2\n{rb.end_marker(avx2)}"
                         "\nanalysis\n")
            # A new kind of host gets its own section after the last one.
            rb.update_docs("avx512 table", avx512, path)
            with open(path) as fh:
                self.assertEqual(fh.read(), (
                    f"intro\n{rb.begin_marker(avx2)}\nold avx2\n{rb.end_marker(avx2)}\n\n"
                    f"{rb.begin_marker(avx512)}\navx512 table\n{rb.end_marker(avx512)}"
                    "\nanalysis\n"))
            # A rerun on a host replaces its section only.
            rb.update_docs("avx2 rerun", avx2, path)
            rb.update_docs("avx512 rerun", avx512, path)
            with open(path) as fh:
                self.assertEqual(fh.read(), (
                    f"intro\n{rb.begin_marker(avx2)}\navx2 rerun\n{rb.end_marker(avx2)}\n\n"
                    f"{rb.begin_marker(avx512)}\navx512 rerun\n{rb.end_marker(avx512)}"
                    "\nanalysis\n"))

    def test_host_key_names_isa_and_cpu(self):
        res = {"machine": {"cpu": "Intel(R) Xeon(R) Processor", "arch": "x86_64",
                           "isa": "AVX-512 + AVX512-BF16 + AMX-BF16"}}
        self.assertEqual(rb.host_key(res),
                         "AVX-512 + AVX512-BF16 + AMX-BF16, Intel(R) Xeon(R) Processor")
        # A results.json of before the ISA was recorded: from its flags.
        old = {"machine": {"cpu": "AMD EPYC", "flags": ["avx", "avx2", "fma"]}}
        self.assertEqual(rb.host_key(old), "AVX2+FMA, AMD EPYC")

    def test_every_table_names_the_isa(self):
        row = {"shape": "S/32", "tokens": 400, "d": 512, "f": 2048, "experts": 8,
               "threads": 1, "kept_share": 0.998, "expert_gflops": 50.0,
               "vmoe_ms": 40.0, "torch_ms": 60.0, "speedup": 1.5}
        res = {"machine": {"cpus": 2, "cpu": "AMD EPYC", "flags": ["avx2", "fma"]},
               "peak": {"single_core": 100.0, "1": 100.0, "isa": "avx2-fma"},
               "date": "2026-11-29 02:00", "command": "bench/run_benchmarks.py",
               "rounds": 3, "moe_layers": [row]}
        text = rb.render(res)
        headings = [l for l in text.splitlines() if l.startswith("#### ")]
        self.assertGreaterEqual(len(headings), 2)
        for h in headings:
            self.assertIn("AVX2+FMA", h)
        # No AVX512-BF16 or AMX: the bf16 goal is a row that says so.
        self.assertIn("could not be measured on this host", text)

    def test_calibration_judged_against_the_runs_best_peak(self):
        # The check at the start saw a low peak (a busy machine): a GEMM "above the
        # peak" then is not a broken thread limit once the run measured more.
        info = {"calibration_gflops": 121.0,
                "warnings": ["a 1-thread GEMM ran at 121 GFLOP/s, above 1 core(s)' peak: "
                             "the thread limit does not hold"]}
        peak = {"single_core": 234.0, "1": 234.0}
        self.assertEqual(rb.calibration_warnings(info, 1, peak, 0.5), [])
        self.assertEqual(len(rb.calibration_warnings(info, 1, {"1": 100.0}, 0.5)), 1)
        slow = rb.calibration_warnings(dict(info, calibration_gflops=60.0), 1, peak, 0.5)
        self.assertEqual(len(slow), 1)
        self.assertIn("these ratios flatter vmoe", slow[0])

    def test_forced_core_table(self):
        res = {"machine": {"cpus": 2, "cpu": "Xeon", "isa": "AVX-512"},
               "date": "d", "command": "c", "rounds": 3,
               "forced_core_check": {
                   "forced": "Prescott", "threads": 1,
                   "torch": {"openblas_detected_core": "Prescott", "openblas_core": "SkylakeX",
                             "calibration_gflops_detected": 27.0,
                             "calibration_gflops": 146.0},
                   "rows": [{"model": "s32", "batch": 8, "threads": 1, "vmoe_ms": 100.0,
                             "torch_ms": 160.0, "speedup": 1.6, "normal_speedup": 1.55}]}}
        text = rb.render(res)
        self.assertIn("#### OpenBLAS forced to Prescott on the peer, detected and corrected "
                      "(AVX-512)", text)
        self.assertIn("the harness read Prescott (calibration GEMM 27.0 GFLOP/s), restarted "
                      "the worker on SkylakeX (calibration GEMM 146.0 GFLOP/s)", text)
        self.assertIn("| V-MoE-S/32, E=8, last 2 | 8 | 1 | 1.55x | 1.60x | 160 |", text)

    def test_bf16_goal_counts_bf16_math_rows(self):
        row = {"shape": "S/32", "experts": 8, "threads": 1, "weights": "bf16-math",
               "speedup": 3.2}
        res = {"machine": {"all_flags": ["avx512_bf16"]},
               "moe_layers": [row, dict(row, experts=32, speedup=2.5),
                              dict(row, weights="f32", speedup=9.0)],
               "bf16_instructions": {"vdpbf16ps": 12, "tdpbf16ps": 0}}
        line = rb.bf16_goal(res)
        self.assertIn("met in 1 of 2 rows", line)
        self.assertIn("`vdpbf16ps` (12", line)

if __name__ == "__main__":
    unittest.main()
