"""Checks of bench/openblas_core.py: which OpenBLAS kernels the benchmarks'
PyTorch side must run on a host.

Debian's OpenBLAS 0.3.21 picks its kernels from the CPU's model number; a CPU
newer than its table gets an old fallback (Prescott's SSE3 kernels on an
AVX-512 Xeon it did not know: 5x slower). The harness reads the core OpenBLAS
chose and, when it is older than the best core the host's flags allow, runs
PyTorch with OPENBLAS_CORETYPE set to that best core.

Run: /usr/bin/python3 tests/python/test_openblas_core.py   (exits non-zero on failure)
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import openblas_core as oc  # noqa: E402

SSE = {"sse", "sse2", "pni", "ssse3", "sse4_1", "sse4_2"}
AVX2 = SSE | {"avx", "avx2", "fma", "f16c"}
AVX512 = AVX2 | {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
SPR = AVX512 | {"avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8",
                "avx512_fp16"}


class DecisionTest(unittest.TestCase):
    def test_best_core_per_isa(self):
        self.assertEqual(oc.best_core(SPR), "Cooperlake")
        self.assertEqual(oc.best_core(AVX512), "SkylakeX")
        self.assertEqual(oc.best_core(AVX2), "Haswell")
        self.assertEqual(oc.best_core(AVX2, "AuthenticAMD"), "Zen")
        self.assertEqual(oc.best_core(SSE | {"avx"}), "Sandybridge")
        self.assertEqual(oc.best_core(SSE | {"avx", "fma"}, "AuthenticAMD"), "Piledriver")
        self.assertEqual(oc.best_core(SSE), "Nehalem")
        self.assertEqual(oc.best_core({"sse2", "pni"}), "Prescott")
        self.assertIsNone(oc.best_core({"sse2"}))
        self.assertIsNone(oc.best_core({"asimd", "fp"}, "", "aarch64"))
        # Zen 4: AVX-512 with BF16 on an AMD CPU.
        self.assertEqual(oc.best_core(SPR - {"amx_bf16", "amx_tile", "amx_int8"},
                                      "AuthenticAMD"), "Cooperlake")
        # AVX-512F alone (no BW/VL, Knights Landing) is not SkylakeX's set.
        self.assertEqual(oc.best_core(AVX2 | {"avx512f", "avx512cd"}), "Haswell")

    def test_host_newer_than_openblas_table_gets_its_best_core(self):
        # The machine: an AVX-512 Xeon that OpenBLAS 0.3.21 did not know
        # ran Prescott's kernels; and this project's AVX-512 + AMX host forced to
        # Prescott. Both must run the best core the flags allow.
        self.assertEqual(oc.decide("Prescott", AVX512),
                         {"core": "Prescott", "best": "SkylakeX", "force": "SkylakeX"})
        self.assertEqual(oc.decide("Prescott", SPR)["force"], "Cooperlake")
        self.assertEqual(oc.decide("Haswell", SPR)["force"], "Cooperlake")
        self.assertEqual(oc.decide("SkylakeX", SPR)["force"], "Cooperlake")
        self.assertEqual(oc.decide("Nehalem", AVX2, "AuthenticAMD")["force"], "Zen")
        # Only cores that OpenBLAS 0.3.21 knows are proposed.
        for flags in (SPR, AVX512, AVX2, SSE):
            self.assertIn(oc.best_core(flags), oc.KNOWN_0_3_21)

    def test_best_or_newer_core_is_kept(self):
        self.assertIsNone(oc.decide("Cooperlake", SPR)["force"])
        self.assertIsNone(oc.decide("Haswell", AVX2)["force"])
        self.assertIsNone(oc.decide("Zen", AVX2, "AuthenticAMD")["force"])
        # A newer OpenBLAS's own choice is not replaced by an older core.
        self.assertIsNone(oc.decide("SapphireRapids", SPR)["force"])
        # Equal rank, other vendor's name: no change.
        self.assertIsNone(oc.decide("Zen", AVX2)["force"])
        # Names outside the table (another architecture) and no OpenBLAS at all.
        self.assertIsNone(oc.decide("NEOVERSEN1", {"asimd"}, "", "aarch64")["force"])
        self.assertIsNone(oc.decide("SomethingNew", SPR)["force"])
        self.assertIsNone(oc.decide(None, SPR)["force"])

    def test_isa_names(self):
        self.assertEqual(oc.isa_name(SPR), "AVX-512 + AVX512-BF16 + AMX-BF16")
        self.assertEqual(oc.isa_name(AVX512), "AVX-512")
        self.assertEqual(oc.isa_name(AVX2), "AVX2+FMA")
        self.assertEqual(oc.isa_name({"asimd"}, "aarch64"), "AArch64 NEON")

    def test_host_cpu_reads_cpuinfo(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "cpuinfo")
            with open(path, "w") as f:
                f.write("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                        "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 pni avx avx2 fma\n\n"
                        "processor\t: 1\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu\n")
            flags, vendor, model = oc.host_cpu(path)
        self.assertEqual(vendor, "AuthenticAMD")
        self.assertEqual(model, "AMD EPYC 7B13")
        self.assertEqual(flags, {"fpu", "sse2", "pni", "avx", "avx2", "fma"})
        self.assertEqual(oc.best_core(flags, vendor), "Zen")


class LoadedLibraryTest(unittest.TestCase):
    """On this machine: the probe reads the core of the OpenBLAS PyTorch loads,
    and OPENBLAS_CORETYPE forcing an old core is seen and corrected."""

    def probe(self, coretype):
        env = dict(os.environ)
        env.pop("OPENBLAS_CORETYPE", None)
        if coretype:
            env["OPENBLAS_CORETYPE"] = coretype
        out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "openblas_core.py")],
                             check=True, capture_output=True, text=True, env=env).stdout
        return json.loads(out)

    def test_forced_prescott_is_detected(self):
        flags, vendor, _ = oc.host_cpu()
        best = oc.best_core(flags, vendor, os.uname().machine)
        forced = self.probe("Prescott")
        # setup.sh installs OpenBLAS (libopenblas0-pthread): PyTorch's libblas.so.3.
        self.assertIsNotNone(forced["core"], f"no OpenBLAS loaded: {forced['blas']}")
        if os.uname().machine != "x86_64":
            self.skipTest("OPENBLAS_CORETYPE names are x86-64 cores")
        self.assertEqual(forced["core"], "Prescott")
        self.assertEqual(forced["best"], best)
        if oc.CORE_RANKS[best] > oc.CORE_RANKS["Prescott"]:
            self.assertEqual(forced["force"], best)
            # And the best core, forced, takes and needs no change.
            again = self.probe(best)
            self.assertEqual(again["core"], best)
            self.assertIsNone(again["force"])


if __name__ == "__main__":
    unittest.main()
