#!/usr/bin/python3
"""aarch64 modules under qemu-aarch64 against the same modules on the host.

  aarch64_qemu_test.py build --source DIR --build DIR [--generator G]
                             [--make-program P] [--flatbuffers-dir D]
      configures and builds the runtime-only aarch64 vmoe-run
      (cmake/toolchains/aarch64-linux-gnu.cmake) into DIR
  aarch64_qemu_test.py compare --case NAME --source DIR --vmoe-compile EXE
                               --vmoe-run EXE --cross-run EXE --work DIR
      compiles the case's model for --cpu=aarch64 and for the host, runs the
      aarch64 module under qemu-aarch64 and the host module natively on the
      same images at several capacity factors, with and without BPR, and
      compares them (cases: fashion-mnist, moe-k1-k2, and fashion-mnist-int8:
      int8 experts and dense layers, sdot on aarch64+dotprod against the
      host's vpdpbusd or vpmaddwd)

What must match:
  - the routing statistics of every MoE layer (capacity, assignments kept,
    coverage of the least-covered image) and the accuracy, exactly;
  - the predicted class of every image, exactly;
  - the logits within |aarch64 - host| <= TOL * max(1, |host|), TOL = 2e-3.
The logits are not bit-identical: the host module uses 8 or 16 f32 lanes and
the aarch64 one 4, so reductions (softmax and LayerNorm sums, the GEMM
epilogues' tails) add in another order; the two back ends contract a*b+c
into FMAs in different places; and where a layer dispatches in bf16 a last-bit
difference that crosses a bf16 rounding boundary moves that value by 2^-8 of
itself. Measured: at most 3.4e-4 on the bundled model (bf16 dispatch), about
1e-6 on the random one; a wrong kernel is off by far more than 2e-3.
The int8 case's integer sums are exact on both, but the f32 steps above
can move an activation across an int8 rounding boundary (one q off by one),
and that difference is carried through the later layers: most logits agree
to 1e-7, a few by up to 8.0e-3 (measured); its tolerance is TOL_INT8 = 2e-2.

Exits 77 (skipped, with the reason) when the cross toolchain or qemu-aarch64
is missing.
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np

SKIP = 77
SYSROOT = "/usr/aarch64-linux-gnu"
TOLERANCE = 2e-3
TOL_INT8 = 2e-2


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def missing_tools():
    """What the cross build or the emulation lacks, as a list of sentences."""
    missing = []
    if not shutil.which("qemu-aarch64"):
        missing.append("qemu-aarch64 (Debian package qemu-user)")
    if not (shutil.which("clang++-22") or shutil.which("clang++")):
        missing.append("clang++ (Debian package clang-22)")
    if not (shutil.which("ld.lld-22") or shutil.which("ld.lld")):
        missing.append("ld.lld (Debian package lld-22)")
    if not os.path.exists(os.path.join(SYSROOT, "lib", "libc.so.6")):
        missing.append(f"the aarch64 C library in {SYSROOT} "
                       "(Debian package libc6-dev-arm64-cross)")
    if not os.path.exists(os.path.join(SYSROOT, "lib", "libstdc++.so.6")):
        missing.append("the aarch64 C++ library "
                       "(Debian package libstdc++-12-dev-arm64-cross)")
    return missing


def skip_if_missing():
    missing = missing_tools()
    if missing:
        print("SKIPPED: aarch64 cross test needs " + "; ".join(missing) +
              " (scripts/setup.sh installs them)")
        sys.exit(SKIP)


def run(cmd, expect_ok=True, **kwargs):
    result = subprocess.run(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)
    if expect_ok and result.returncode != 0:
        fail(f"{' '.join(cmd)} exited with {result.returncode}:\n"
             f"{result.stdout}{result.stderr}")
    return result


# ---- build -------------------------------------------------------------------


def build(args):
    skip_if_missing()
    cmd = ["cmake", "-S", args.source, "-B", args.build,
           "-DCMAKE_BUILD_TYPE=Release",
           "-DCMAKE_TOOLCHAIN_FILE=" + os.path.join(
               args.source, "cmake", "toolchains", "aarch64-linux-gnu.cmake"),
           "-DVMOE_ENABLE_COMPILER=OFF", "-DVMOE_BUILD_TESTS=OFF"]
    if args.generator:
        cmd += ["-G", args.generator]
    if args.make_program:
        cmd += ["-DCMAKE_MAKE_PROGRAM=" + args.make_program]
    if args.flatbuffers_dir:
        cmd += ["-DFlatBuffers_DIR=" + args.flatbuffers_dir]
    run(cmd)  # again each time: cheap, and it repairs a half-configured tree
    run(["cmake", "--build", args.build, "--target", "vmoe-run",
         "--parallel", "2"])
    exe = os.path.join(args.build, "bin", "vmoe-run")
    info = run(["file", exe], expect_ok=False).stdout if shutil.which(
        "file") else ""
    print(f"built {exe} {info.split(':', 1)[-1].strip()}")
    # A smoke run: the emulated binary starts and rejects a bad argument
    # with its own message.
    bad = run(["qemu-aarch64", "-L", SYSROOT, exe, "--threads", "0"],
              expect_ok=False)
    if bad.returncode == 0 or "--threads" not in bad.stderr:
        fail("the aarch64 vmoe-run did not reject --threads 0 under qemu:\n" +
             bad.stdout + bad.stderr)


# ---- compare -----------------------------------------------------------------

FASHION_MNIST = ["models/fashion-mnist/config.json", "--weights",
                 "models/fashion-mnist/weights.npz", "--batch", "8",
                 "--max-capacity-factor", "2.0"]
FASHION_MNIST_RUNS = [[], ["--capacity-factor", "0.25", "--bpr", "on"],
                      ["--capacity-factor", "0.25", "--bpr", "off"]]
CASES = {
    # name: (compile arguments after vmoe-compile, runs)
    "fashion-mnist": (FASHION_MNIST, FASHION_MNIST_RUNS),
    "fashion-mnist-int8": (
        FASHION_MNIST + ["--expert-math=int8", "--dense-math=int8"],
        FASHION_MNIST_RUNS),
    "moe-k1-k2": (
        ["tests/cross/moe-k1-k2.mlir", "--random-weights=7"],
        [["--capacity-factor", "2.0", "--bpr", "off"], [],
         ["--capacity-factor", "0.25", "--bpr", "on"],
         ["--capacity-factor", "0.25", "--bpr", "off"]]),
}


def write_inputs(case, source, work):
    """The images both runs classify, and the labels if there are any."""
    images = os.path.join(work, "images.npy")
    labels = None
    if case.startswith("fashion-mnist"):
        samples = np.load(os.path.join(source, "models", "fashion-mnist",
                                       "samples.npz"))
        np.save(images, samples["images"][:32])  # uint8, 4 batches of 8
        labels = os.path.join(work, "labels.npy")
        np.save(labels, samples["labels"][:32].astype(np.int32))
    else:
        rng = np.random.default_rng(5)
        np.save(images, rng.uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32))
    return images, labels


def routing_lines(stdout):
    return [line for line in stdout.splitlines()
            if line.startswith("MoE layer") or line.startswith("accuracy:")]


def write_png(path):
    """A valid 1x1 grey PNG."""
    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", crc)
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                chunk(b"IDAT", zlib.compress(b"\x00\x80")) +
                chunk(b"IEND", b""))


def compare(args):
    skip_if_missing()
    if not os.path.exists(args.cross_run):
        fail(f"{args.cross_run} does not exist (the build step failed?)")
    os.makedirs(args.work, exist_ok=True)
    compile_args, runs = CASES[args.case]
    modules = {}
    # int8 needs the dotprod extension (sdot) on aarch64.
    int8 = "--expert-math=int8" in compile_args
    for cpu in ("aarch64", "host"):
        modules[cpu] = os.path.join(args.work, f"{args.case}-{cpu}.vmoe")
        name = "aarch64+dotprod" if cpu == "aarch64" and int8 else cpu
        run([args.vmoe_compile] + compile_args +
            [f"--cpu={name}", "-o", modules[cpu]], cwd=args.source)
    images, labels = write_inputs(args.case, args.source, args.work)
    qemu = ["qemu-aarch64", "-L", SYSROOT, args.cross_run]

    # Each runtime refuses the other machine's module, with a clear message:
    # the emulated run below really executes aarch64 code.
    wrong = run([args.vmoe_run, modules["aarch64"]], expect_ok=False)
    if wrong.returncode == 0 or "aarch64" not in wrong.stderr:
        fail("the host runtime did not refuse the aarch64 module:\n" +
             wrong.stdout + wrong.stderr)
    wrong = run(qemu + [modules["host"]], expect_ok=False)
    if wrong.returncode == 0 or "compiled for" not in wrong.stderr:
        fail("the aarch64 runtime did not refuse the host module:\n" +
             wrong.stdout + wrong.stderr)
    # The aarch64 build has no libspng: a PNG is an error that says so.
    png = os.path.join(args.work, "one.png")
    write_png(png)
    nopng = run(qemu + [modules["aarch64"], png], expect_ok=False)
    if nopng.returncode == 0 or "without PNG support" not in nopng.stderr:
        fail("a PNG given to the aarch64 vmoe-run (built without libspng) "
             "was not refused with a message saying so:\n" + nopng.stdout +
             nopng.stderr)

    tolerance = TOL_INT8 if int8 else TOLERANCE
    worst = 0.0
    for knobs in runs:
        common = ["--input", images, "--threads", "2", "--show", "0"] + knobs
        if labels:
            common += ["--labels", labels]
        host_out = os.path.join(args.work, "host.npy")
        cross_out = os.path.join(args.work, "aarch64.npy")
        host = run([args.vmoe_run, modules["host"], "--output", host_out] +
                   common)
        cross = run(qemu + [modules["aarch64"], "--output", cross_out] +
                    common)
        name = " ".join(knobs) or "the module's defaults"
        host_lines, cross_lines = (routing_lines(host.stdout),
                                   routing_lines(cross.stdout))
        if not host_lines or not any(l.startswith("MoE layer")
                                     for l in host_lines):
            fail(f"{name}: the host run printed no routing statistics:\n" +
                 host.stdout)
        if host_lines != cross_lines:
            fail(f"{name}: routing statistics differ\nhost:\n" +
                 "\n".join(host_lines) + "\naarch64:\n" +
                 "\n".join(cross_lines))
        h, a = np.load(host_out), np.load(cross_out)
        if h.shape != a.shape:
            fail(f"{name}: logits of shape {a.shape} under qemu, {h.shape} "
                 "on the host")
        if not np.all(np.isfinite(h)) or not np.all(np.isfinite(a)):
            fail(f"{name}: non-finite logits")
        if not np.array_equal(h.argmax(1), a.argmax(1)):
            bad = np.nonzero(h.argmax(1) != a.argmax(1))[0]
            fail(f"{name}: predictions differ for images {bad.tolist()}")
        err = np.abs(a - h) / np.maximum(1.0, np.abs(h))
        worst = max(worst, float(err.max()))
        if err.max() > tolerance:
            i = np.unravel_index(err.argmax(), err.shape)
            fail(f"{name}: logit {tuple(int(x) for x in i)} is {a[i]} under "
                 f"qemu and {h[i]} on the host (relative error "
                 f"{err.max():.3g} > {tolerance})")
        print(f"{args.case}, {name}: routing and {h.shape[0]} predictions "
              f"equal, largest logit difference {err.max():.3g}")
        for line in host_lines:
            print("  " + line)
    print(f"{args.case}: aarch64 under qemu matches the host "
          f"(largest relative logit difference {worst:.3g}, "
          f"tolerance {tolerance})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--source", required=True)
    b.add_argument("--build", required=True)
    b.add_argument("--generator")
    b.add_argument("--make-program")
    b.add_argument("--flatbuffers-dir")
    c = sub.add_parser("compare")
    c.add_argument("--case", required=True, choices=sorted(CASES))
    c.add_argument("--source", required=True)
    c.add_argument("--vmoe-compile", required=True)
    c.add_argument("--vmoe-run", required=True)
    c.add_argument("--cross-run", required=True)
    c.add_argument("--work", required=True)
    args = parser.parse_args()
    build(args) if args.command == "build" else compare(args)


if __name__ == "__main__":
    main()
