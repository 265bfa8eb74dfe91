#!/usr/bin/env python3
"""Expert parallelism on one machine: memory and throughput for 1, 2, 4 ranks.

For each rank count N compiles the preset with random weights (N = 1: one
module; N > 1: --expert-shards=N), runs the same images once as one process
(N = 1) or under `mpirun -np N vmoe-run` (each rank on its slice), and
records per rank: the peak resident memory (the rank's ru_maxrss), the peak
of the module file's pages resident in it (polled from /proc/PID/smaps) and
the expert weights it holds (from the module sizes: the weights of one
module minus those of a rank, times N/(N-1), are all the experts); for the
job: images/s, and the all-to-all share of rank 0's `--profile` (waiting
for the slowest rank included). Each N's logits are compared with those of
one process, bit for bit. Modules are deleted after their row unless
--keep. With --update-docs, rewrites the table in docs/mpi.md between its
markers (--doc-tag names them, so several tables can live there).

  /usr/bin/python3 bench/mpi_ranks.py
  /usr/bin/python3 bench/mpi_ranks.py --ranks 1,2 --images 16 --repeat 1
  /usr/bin/python3 bench/mpi_ranks.py --preset vmoe-h14-e32-every2 \\
      --ranks 1,4 --batch 1 --group-size 257 --images 4 --repeat 1

Under mpirun the script also serves as each rank's wrapper (--wrap-rank),
measuring the rank's vmoe-run the same way one process is measured.
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_pages(pid):
    """Bytes of *.vmoe file mappings resident in process pid."""
    total, in_module = 0, False
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    in_module = line.rstrip().endswith(".vmoe")
                elif in_module and first == "Rss:":
                    total += int(line.split()[1]) * 1024
    except OSError:
        pass
    return total


def run_measured(cmd, stdout=None):
    """Runs cmd; returns (rc, seconds, peak RSS, peak module pages, out)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=stdout or subprocess.PIPE, text=True)
    peak_pages = [0]
    done = threading.Event()

    def poll():
        while not done.wait(0.25):
            peak_pages[0] = max(peak_pages[0], module_pages(proc.pid))

    poller = threading.Thread(target=poll)
    poller.start()
    out = proc.stdout.read() if stdout is None else ""
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    poller.join()
    return (os.waitstatus_to_exitcode(status), time.monotonic() - start,
            usage.ru_maxrss * 1024, peak_pages[0], out)


def wrap_rank(out_dir, cmd):
    """One rank under mpirun: run cmd, record its memory, pass its output."""
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK",
                              os.environ.get("PMI_RANK", "0")))
    rc, seconds, rss, pages, out = run_measured(cmd)
    sys.stdout.write(out)
    sys.stdout.flush()
    with open(os.path.join(out_dir, "rank%d.json" % rank), "w") as f:
        json.dump({"rank": rank, "rc": rc, "seconds": seconds, "rss": rss,
                   "module_pages": pages}, f)
    return rc


def parse_run(out):
    r = {}
    m = re.search(r"time: median ([0-9.]+) ms over \d+ run\(s\) of (\d+) "
                  r"image\(s\), ([0-9.]+) ms per image", out)
    if m:
        r["ms_per_call_all"] = float(m.group(1))
        r["images"] = int(m.group(2))
        r["ms_per_image"] = float(m.group(3))
    shares = re.findall(r"^\s*\d+\s+all_to_all\s+([0-9.]+) ms\s+([0-9.]+)%",
                        out, re.M)
    if shares:
        r["all_to_all_ms"] = sum(float(s[0]) for s in shares)
        r["all_to_all_share"] = sum(float(s[1]) for s in shares) / 100
        r["all_to_all_steps"] = len(shares)
    m = re.search(r"profile: mean per call over (\d+) call", out)
    if m:
        r["profiled_calls"] = int(m.group(1))
    return r


def model_args(args):
    # A preset name, or a vmoe config file (.json).
    if args.preset.endswith(".json"):
        return [args.preset]
    return ["--preset", args.preset]


def compile_row(args, n, path):
    compile_bin = os.path.join(args.build, "bin", "vmoe-compile")
    cmd = [compile_bin] + model_args(args) + ["--random-weights=1",
           "--batch", str(args.batch), "--quiet", "-o", path]
    if args.group_size:
        cmd += ["--group-size", str(args.group_size)]
    if n > 1:
        cmd.append("--expert-shards=%d" % n)
    cmd += args.compile_arg
    rc, seconds, rss, _, out = run_measured(cmd)
    if rc != 0:
        raise RuntimeError("vmoe-compile exited %d: %s" % (rc, " ".join(cmd)))
    files = re.findall(r"wrote (\S+): (\d+) bytes, .*? weights (\d+) bytes, "
                       r"arena (\d+) bytes", out)
    return {"compile_s": seconds, "compile_rss": rss,
            "files": [f[0] for f in files],
            "file_bytes": [int(f[1]) for f in files],
            "weight_bytes": [int(f[2]) for f in files],
            "arena_bytes": int(files[0][3]) if files else 0}


def run_row(args, n, path, images_npy, logits_npy):
    run_bin = os.path.join(args.build, "bin", "vmoe-run")
    threads = args.threads or max(1, (os.cpu_count() or 1) // n)
    vmoe_run = [run_bin, path, "--input", images_npy, "--output", logits_npy,
                "--threads", str(threads), "--repeat", str(args.repeat),
                "--show", "0", "--profile", "--verify-weights", "none"]
    if n == 1:
        rc, seconds, rss, pages, out = run_measured(vmoe_run)
        ranks = [{"rank": 0, "rc": rc, "rss": rss, "module_pages": pages}]
    else:
        rank_dir = os.path.join(args.out_dir, "ranks%d" % n)
        shutil.rmtree(rank_dir, ignore_errors=True)
        os.makedirs(rank_dir)
        mpirun = ["mpirun", "-np", str(n)]
        if os.geteuid() == 0:
            mpirun.append("--allow-run-as-root")
        if n > (os.cpu_count() or 1):
            mpirun.append("--oversubscribe")
        cmd = mpirun + [sys.executable, os.path.abspath(__file__),
                        "--wrap-rank", rank_dir, "--"] + vmoe_run
        rc, seconds, _, _, out = run_measured(cmd)
        ranks = []
        for r in range(n):
            with open(os.path.join(rank_dir, "rank%d.json" % r)) as f:
                ranks.append(json.load(f))
        shutil.rmtree(rank_dir)
    if rc != 0:
        sys.stderr.write(out)
        raise RuntimeError("vmoe-run exited %d" % rc)
    result = {"threads": threads, "job_s": seconds, "ranks": ranks}
    result.update(parse_run(out))
    return result


def row(args, n, images_npy, reference_npy):
    import numpy as np
    name = os.path.splitext(os.path.basename(args.preset))[0]
    path = os.path.join(args.out_dir, "%s-%d.vmoe" % (name, n))
    result = {"preset": args.preset, "n": n, "batch": args.batch}
    result.update(compile_row(args, n, path))
    logits = os.path.join(args.out_dir, "logits-%d.npy" % n)
    try:
        result.update(run_row(args, n, path, images_npy, logits))
    finally:
        if not args.keep:
            for f in result["files"]:
                os.remove(f)
    if os.path.exists(reference_npy) and n > 1:
        a, b = np.load(reference_npy), np.load(logits)
        result["bitwise_equal"] = bool(a.shape == b.shape and
                                       a.tobytes() == b.tobytes())
        result["max_abs_diff"] = float(np.max(np.abs(a - b)))
    return result


def mib(n):
    return "%.0f" % (n / 2**20)


def gb(n):
    return "%.2f GB" % (n / 1e9)


def table(rows):
    one = next((r for r in rows if r["n"] == 1), None)
    lines = ["| ranks | threads per rank | rank file | expert weights per "
             "rank | peak RSS per rank (MiB) | of it module pages (MiB) | "
             "images/s (job) | all-to-all share (rank 0) | logits = 1 rank |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        n = r["n"]
        experts = "-"
        if one and n > 1:
            total = (one["weight_bytes"][0] - r["weight_bytes"][0]) * n / (n - 1)
            experts = "%s (1/%d of %s)" % (gb(total / n), n, gb(total))
            r["expert_bytes_per_rank"] = total / n
        elif one and n == 1:
            others = [x for x in rows if x["n"] > 1]
            if others:
                o = others[0]
                total = ((one["weight_bytes"][0] - o["weight_bytes"][0]) *
                         o["n"] / (o["n"] - 1))
                experts = gb(total)
        rss = [x["rss"] for x in r["ranks"]]
        pages = [x["module_pages"] for x in r["ranks"]]
        span = lambda v: (mib(min(v)) if mib(min(v)) == mib(max(v)) else
                          "%s-%s" % (mib(min(v)), mib(max(v))))
        over = " (oversubscribed: %d cores)" % (os.cpu_count() or 1) \
            if n > (os.cpu_count() or 1) else ""
        share = ("%.1f%%" % (100 * r["all_to_all_share"])
                 if "all_to_all_share" in r else "-")
        equal = "-" if n == 1 else (
            "bitwise" if r.get("bitwise_equal") else
            "no (max diff %.3g)" % r.get("max_abs_diff", float("nan")))
        ips = 1000.0 / r["ms_per_image"] if r.get("ms_per_image") else 0
        lines.append("| %d%s | %d | %s | %s | %s | %s | %.2f | %s | %s |" % (
            n, over, r["threads"], gb(r["file_bytes"][0]), experts, span(rss),
            span(pages), ips, share, equal))
    return "\n".join(lines)


def host_line():
    name = platform.machine()
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        m = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
        name = m.group(1).strip() if m else name
        m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
        have = set(m.group(1).split()) if m else set()
        isa = [x for x, f in (("AVX-512", "avx512f"),
                              ("AVX512-BF16", "avx512_bf16"),
                              ("AMX", "amx_tile"), ("AVX2", "avx2"),
                              ("NEON", "asimd")) if f in have]
        flags = ", ".join(isa[:3]) if "AVX-512" in isa else ", ".join(isa)
    except OSError:
        pass
    return "%s (%s), %d cores, %.0f GB of memory" % (
        name, flags or "?", os.cpu_count() or 1,
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9)


def update_docs(args, rows):
    begin = "<!-- mpi_ranks %s begin -->" % args.doc_tag
    end = "<!-- mpi_ranks %s end -->" % args.doc_tag
    doc = os.path.join(ROOT, "docs", "mpi.md")
    with open(doc) as f:
        content = f.read()
    i, j = content.index(begin), content.index(end)
    content = (content[:i] + begin + "\n\n" + table(rows) + "\n\n(" +
               host_line() + ")\n\n" + content[j:])
    with open(doc, "w") as f:
        f.write(content)


def main():
    if len(sys.argv) > 3 and sys.argv[1] == "--wrap-rank":
        return wrap_rank(sys.argv[2], sys.argv[4:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out-dir", default=None,
                        help="modules, images and logits (default: "
                             "BUILD/mpi-ranks)")
    parser.add_argument("--preset", default="vmoe-b16-e32-every2",
                        help="a vmoe-compile preset, or a config .json")
    parser.add_argument("--ranks", default="1,2,4",
                        help="comma-separated rank counts; 1 first gives "
                             "the reference logits")
    parser.add_argument("--batch", type=int, default=8,
                        help="compiled batch of every module")
    parser.add_argument("--group-size", type=int, default=0,
                        help="tokens per routing group (default: the "
                             "preset's)")
    parser.add_argument("--images", type=int, default=32,
                        help="images of every run (whole routing groups "
                             "for every rank count)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of all images; the median is reported")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads per rank (default: cores / ranks, "
                             "at least 1)")
    parser.add_argument("--compile-arg", action="append", default=[],
                        help="extra vmoe-compile argument (repeatable)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the modules")
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--from-json",
                        help="make the table from rows saved with --json")
    parser.add_argument("--update-docs", action="store_true",
                        help="rewrite the table in docs/mpi.md")
    parser.add_argument("--doc-tag", default="b16",
                        help="which table of docs/mpi.md (its markers)")
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            rows = json.load(f)
    else:
        import numpy as np
        args.out_dir = args.out_dir or os.path.join(args.build, "mpi-ranks")
        os.makedirs(args.out_dir, exist_ok=True)
        config = json.loads(subprocess.check_output(
            [os.path.join(args.build, "bin", "vmoe-compile")] +
            model_args(args) + ["--emit=config"], text=True))
        h, w = config["image_size"]
        images = os.path.join(args.out_dir, "images.npy")
        rng = np.random.default_rng(0)
        np.save(images, rng.uniform(-1, 1, (args.images, h, w,
                                            config.get("channels", 3)))
                .astype(np.float32))
        reference = os.path.join(args.out_dir, "logits-1.npy")
        rows = []
        for n in [int(x) for x in args.ranks.split(",")]:
            r = row(args, n, images, reference)
            rows.append(r)
            print(json.dumps(r), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    print(table(rows))
    print("(%s)" % host_line())
    if args.update_docs:
        update_docs(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
