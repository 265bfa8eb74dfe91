"""Checks of the rank benchmark's arithmetic (bench/mpi_ranks.py).

What its table rests on: the times and the all-to-all share read from
vmoe-run's output, the expert bytes per rank derived from the module sizes,
and the module pages counted in /proc/PID/smaps. No compiler, no MPI.

Run: /usr/bin/python3 tests/python/test_mpi_ranks.py   (exits non-zero on failure)
"""
import mmap
import os
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import mpi_ranks as mr  # noqa: E402

# vmoe-run's report under mpirun with --profile (rank 0), abridged.
RUN_OUTPUT = """\
time: median 15367.778 ms over 3 run(s) of 32 image(s), 480.243 ms per image, 1 thread(s)
ranks: 2, each on 16 image(s)
profile: mean per call over 6 call(s)
   18 b16_moe_pack_0                             1.000 ms   0.1%
   19 all_to_all                                40.500 ms   2.5%
   20 b16_moe_expert_up_0                      300.000 ms  19.0%
   22 all_to_all                                 9.500 ms   0.6%
  119 all_to_all                               100.000 ms   3.7%
"""


def rank_row(n, weights, rss, pages, **extra):
    row = {"n": n, "threads": 1 if n > 1 else 2, "file_bytes": [weights + 1000],
           "weight_bytes": [weights], "ranks": [
               {"rank": r, "rss": rss + r * 2**20, "module_pages": pages}
               for r in range(n)], "ms_per_image": 500.0}
    row.update(extra)
    return row


class ParseRun(unittest.TestCase):
    def test_time_and_exchange_share(self):
        r = mr.parse_run(RUN_OUTPUT)
        self.assertEqual(r["images"], 32)
        self.assertAlmostEqual(r["ms_per_image"], 480.243)
        self.assertAlmostEqual(r["ms_per_call_all"], 15367.778)
        self.assertEqual(r["all_to_all_steps"], 3)
        self.assertAlmostEqual(r["all_to_all_ms"], 150.0)
        self.assertAlmostEqual(r["all_to_all_share"], 0.068)
        self.assertEqual(r["profiled_calls"], 6)

    def test_one_process_has_no_exchange(self):
        r = mr.parse_run(RUN_OUTPUT.replace("all_to_all", "moe_combine"))
        self.assertNotIn("all_to_all_share", r)


class Table(unittest.TestCase):
    def test_expert_bytes_fall_as_one_over_n(self):
        # Dense 0.25 GB, experts 4 GB: one module 4.25 GB, a rank of 2
        # 2.25 GB, of 4 1.25 GB.
        rows = [rank_row(1, 4_250_000_000, 4000 * 2**20, 3900 * 2**20),
                rank_row(2, 2_250_000_000, 2000 * 2**20, 1950 * 2**20,
                         all_to_all_share=0.068, bitwise_equal=True),
                rank_row(4, 1_250_000_000, 1000 * 2**20, 900 * 2**20,
                         all_to_all_share=0.1, bitwise_equal=False,
                         max_abs_diff=0.5)]
        lines = mr.table(rows).splitlines()
        self.assertIn("| 4.00 GB |", lines[2])
        self.assertIn("2.00 GB (1/2 of 4.00 GB)", lines[3])
        self.assertIn("1.00 GB (1/4 of 4.00 GB)", lines[4])
        self.assertAlmostEqual(rows[1]["expert_bytes_per_rank"], 2e9)
        self.assertAlmostEqual(rows[2]["expert_bytes_per_rank"], 1e9)
        self.assertIn("| 2000-2001 | 1950 | 2.00 | 6.8% | bitwise |", lines[3])
        self.assertIn("no (max diff 0.5)", lines[4])
        oversubscribed = 4 > (os.cpu_count() or 1)
        self.assertEqual("oversubscribed" in lines[4], oversubscribed)


class ModulePages(unittest.TestCase):
    def test_counts_resident_pages_of_vmoe_mappings_only(self):
        size = 64 * mmap.PAGESIZE
        with tempfile.TemporaryDirectory() as tmp:
            paths = [os.path.join(tmp, name) for name in ("m.vmoe", "m.bin")]
            maps = []
            for path in paths:
                with open(path, "wb") as f:
                    f.write(b"\1" * size)
                with open(path, "rb") as f:
                    maps.append(mmap.mmap(f.fileno(), size,
                                          access=mmap.ACCESS_READ))
            before = mr.module_pages(os.getpid())
            touched = sum(maps[0][i] for i in range(0, size, mmap.PAGESIZE))
            touched += sum(maps[1][i] for i in range(0, size, mmap.PAGESIZE))
            self.assertEqual(touched, 128)
            after = mr.module_pages(os.getpid())
            # The .vmoe mapping is now resident, the .bin one is not counted.
            self.assertEqual(after - before, size)
            for m in maps:
                m.close()

    def test_a_process_that_is_gone_counts_nothing(self):
        self.assertEqual(mr.module_pages(2**22 + 7), 0)


if __name__ == "__main__":
    unittest.main()
