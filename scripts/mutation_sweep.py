#!/usr/bin/env python3
"""Mutation sweep: every mutant of a module must be refused at load.

Compiles a small module (examples/tiny-vmoe.mlir with --random-weights=1),
or takes one (--module), then mutates

  (a) every byte of its metadata, the file header and the FlatBuffer, each
      set to several other values (the byte XOR 0xff, 0x01 and 0x80), and
  (b) --random bytes (default 2000, seeded) anywhere in the file,

and runs each mutant through vmoe-mutation-driver (tests/mutation), which
loads and runs the mutants in forked children of one process. Each mutant
is classified:

  refused-load              the loader refused it: the only good outcome
  refused-session, -run     accepted at load, refused later
  same, changed             accepted and run: outputs unchanged or changed
  crash, hang               a signal, or past --timeout seconds

Every byte of a module is covered by a digest (docs/bad-inputs.md, "Trust
model"), alignment padding included, so any other outcome is a failure: the
script prints a summary by region and outcome, the first failures with the
command that reproduces them, and exits 1 if there is any.

  scripts/mutation_sweep.py                 # the full sweep (build/)
  scripts/mutation_sweep.py --quick         # 300 metadata + 200 random
  scripts/mutation_sweep.py --module m.vmoe --random 5000 --seed 7

Python 3 standard library only.
"""

import argparse
import collections
import os
import random
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = "refused-load"
FLIPS = (0xFF, 0x01, 0x80)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build"),
                   help="where bin/vmoe-compile and bin/vmoe-mutation-driver "
                        "are (default: build/)")
    p.add_argument("--compiler", help="vmoe-compile (default: in --build-dir)")
    p.add_argument("--driver",
                   help="vmoe-mutation-driver (default: in --build-dir)")
    p.add_argument("--module", help="sweep this module instead of compiling "
                                    "examples/tiny-vmoe.mlir")
    p.add_argument("--work-dir", help="where the compiled module goes "
                                      "(default: a temporary directory)")
    p.add_argument("--random", type=int, default=2000,
                   help="random single-byte mutants over the whole file "
                        "(default 2000)")
    p.add_argument("--metadata-bytes", type=int, default=0,
                   help="sweep only this many metadata bytes, evenly spaced "
                        "(default 0: all of them)")
    p.add_argument("--flips", type=int, default=len(FLIPS),
                   choices=range(1, len(FLIPS) + 1),
                   help="values tried per metadata byte (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="the short form for CI: --metadata-bytes 300 "
                        "--flips 1 --random 200")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--timeout", type=int, default=10,
                   help="seconds one mutant may take (default 10)")
    p.add_argument("--show", type=int, default=20,
                   help="failures listed in full (default 20)")
    args = p.parse_args()
    if args.quick:
        args.metadata_bytes = args.metadata_bytes or 300
        args.flips = 1
        args.random = min(args.random, 200)
    bindir = os.path.join(args.build_dir, "bin")
    args.compiler = args.compiler or os.path.join(bindir, "vmoe-compile")
    args.driver = args.driver or os.path.join(bindir, "vmoe-mutation-driver")
    return args


def compile_module(args, work):
    path = os.path.join(work, "tiny.vmoe")
    cmd = [args.compiler, os.path.join(ROOT, "examples", "tiny-vmoe.mlir"),
           "--random-weights=1", "-o", path]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        sys.exit("mutation_sweep: %s failed:\n%s" % (" ".join(cmd), r.stdout))
    return path


def regions(data):
    """(name, begin, end) of the file's parts, from its header."""
    if len(data) < 64 or data[:8] != b"VMOEMOD\0":
        sys.exit("mutation_sweep: not a vmoe module")
    header_size, = struct.unpack_from("<I", data, 8)
    fb_offset, fb_size, seg_base, seg_size = struct.unpack_from("<4Q", data, 16)
    parts = [("header", 0, header_size),
             ("flatbuffer", fb_offset, fb_offset + fb_size),
             ("segments", seg_base, seg_base + seg_size)]
    out, at = [], 0
    for name, begin, end in sorted(parts, key=lambda r: r[1]):
        begin, end = max(begin, at), min(end, len(data))
        if begin > at:
            out.append(("padding", at, begin))
        if end > begin:
            out.append((name, begin, end))
            at = end
    if at < len(data):
        out.append(("padding", at, len(data)))
    return out


def region_of(parts, offset):
    for name, begin, end in parts:
        if begin <= offset < end:
            return name
    return "padding"


def mutants(args, data, parts):
    """[(region, offset, value)]: the metadata sweep, then random bytes."""
    metadata = [o for name, b, e in parts if name in ("header", "flatbuffer")
                for o in range(b, e)]
    if args.metadata_bytes and args.metadata_bytes < len(metadata):
        step = len(metadata) / args.metadata_bytes
        metadata = [metadata[int(i * step)] for i in range(args.metadata_bytes)]
    out = []
    for o in metadata:
        for flip in FLIPS[:args.flips]:
            out.append((region_of(parts, o), o, data[o] ^ flip))
    rng = random.Random(args.seed)
    for _ in range(args.random):
        o = rng.randrange(len(data))
        out.append((region_of(parts, o), o, data[o] ^ rng.randrange(1, 256)))
    return out


def run_driver(args, module, todo):
    cmd = [args.driver, module, "--jobs", str(args.jobs),
           "--timeout", str(args.timeout)]
    feed = "".join("%d %d %d\n" % (i, o, v) for i, (_, o, v) in
                   enumerate(todo))
    r = subprocess.run(cmd, input=feed, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True,
                       errors="replace")
    if r.returncode != 0:
        sys.exit("mutation_sweep: the driver failed (exit %d):\n%s%s" %
                 (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    results = {}
    for line in r.stdout.splitlines():
        fields = line.split(" ", 2)
        if fields[0] == "reference":
            continue
        results[int(fields[0])] = (fields[1],
                                   fields[2] if len(fields) > 2 else "")
    missing = len(todo) - len(results)
    if missing:
        sys.exit("mutation_sweep: the driver reported %d of %d mutants" %
                 (len(results), len(todo)))
    return results


def summarize(args, module, todo, results, seconds):
    table = collections.defaultdict(collections.Counter)
    reasons = collections.Counter()
    failures = []
    for i, (region, offset, value) in enumerate(todo):
        outcome, detail = results[i]
        table[region][outcome] += 1
        if outcome == GOOD:
            # The check that caught it, without the numbers.
            reasons[" ".join(w for w in detail.split()[:6]
                             if not any(c.isdigit() for c in w))] += 1
        else:
            failures.append((region, offset, value, outcome, detail))
    outcomes = sorted({o for c in table.values() for o in c},
                      key=lambda o: (o != GOOD, o))
    print("mutation sweep of %s: %d mutants in %.1f s" %
          (module, len(todo), seconds))
    width = max(len(o) for o in outcomes + ["region"])
    print("  %-12s" % "region" +
          "".join(" %*s" % (width, o) for o in outcomes))
    for region in sorted(table):
        print("  %-12s" % region +
              "".join(" %*d" % (width, table[region][o]) for o in outcomes))
    print("refused at load by:")
    for reason, n in reasons.most_common(8):
        print("  %6d  %s" % (n, reason))
    if not failures:
        print("PASS: every mutant was refused at load")
        return 0
    print("FAIL: %d of %d mutants were not refused at load" %
          (len(failures), len(todo)))
    severity = ["crash", "hang", "changed", "refused-run", "refused-session",
                "same"]
    failures.sort(key=lambda f: (severity.index(f[3])
                                 if f[3] in severity else 0, f[1]))
    for region, offset, value, outcome, detail in failures[:args.show]:
        print("  %s at offset %d (%s) set to 0x%02x: %s" %
              (outcome, offset, region, value, detail))
    region, offset, value = failures[0][:3]
    print("reproduce one: echo '0 %d %d' | %s %s" %
          (offset, value, args.driver, module))
    if not args.module and not args.work_dir:
        print("(the module is deleted on exit: give --work-dir to keep it)")
    return 1


def main():
    args = parse_args()
    for tool in ([args.driver] if args.module else [args.driver,
                                                     args.compiler]):
        if not os.access(tool, os.X_OK):
            sys.exit("mutation_sweep: %s not found (build it, or give "
                     "--build-dir)" % tool)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or tmp
        os.makedirs(work, exist_ok=True)
        module = args.module or compile_module(args, work)
        with open(module, "rb") as f:
            data = f.read()
        parts = regions(data)
        todo = mutants(args, data, parts)
        start = time.monotonic()
        results = run_driver(args, module, todo)
        return summarize(args, module, todo, results,
                         time.monotonic() - start)


if __name__ == "__main__":
    sys.exit(main())
