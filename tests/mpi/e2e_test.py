#!/usr/bin/env python3
"""N ranks under mpirun against one process, on compiled models.

usage: e2e_test.py MPIRUN NP CASE VMOE_COMPILE VMOE_RUN SOURCE_DIR WORKDIR

CASE: fashion-mnist (the bundled model on its 256 sample images),
random-e8, random-e32 (random weights, tests/mpi/random-e*.json), or
faults (shards of another rank count, and rank files of two compiles mixed).
The models compile once as one module and once as NP expert shards
(vmoe-compile --expert-shards); vmoe-run runs the one module alone and the
shards under mpirun on the same images, and the logits must be equal
bit for bit, as must every MoE layer's routing report.
"""
import os
import shutil
import sys

import numpy as np

import mpirun_support

BOUND_S = 120


def run(cmd, cwd, mpirun=None, np_=0):
    return mpirun_support.run(cmd, cwd, BOUND_S, mpirun, np_)


def expect(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)


def compile_model(compile_, source, case, work, out, extra=(), seed=1):
    if case == "fashion-mnist":
        model = os.path.join(source, "models", "fashion-mnist")
        args = [os.path.join(model, "config.json"), "--weights",
                os.path.join(model, "weights.npz"), "--batch", "32"]
    else:
        args = [os.path.join(source, "tests", "mpi", case + ".json"),
                f"--random-weights={seed}"]
    rc, _ = run([compile_, *args, *extra, "-o", out], work)
    expect(rc == 0, f"vmoe-compile {case}")


def inputs(source, case, work, np_):
    path = os.path.join(work, "x.npy")
    if case == "fashion-mnist":
        x = np.load(os.path.join(source, "models", "fashion-mnist",
                                 "samples.npz"))["inputs"]
    else:
        # 11 groups of 2 images per rank: calls of 8, 8 and 6 images on
        # each rank, and a last partial call in one process too.
        rng = np.random.default_rng(7)
        x = rng.uniform(-1, 1, (22 * np_, 16, 16, 3)).astype(np.float32)
    np.save(path, x)
    return path


def routing_lines(out):
    return [l for l in out.splitlines() if l.startswith("MoE layer")]


def equality(mpirun, np_, case, compile_, vmoe_run, source, work):
    one = os.path.join(work, "one.vmoe")
    shards = os.path.join(work, "shards.vmoe")
    compile_model(compile_, source, case, work, one)
    compile_model(compile_, source, case, work, shards,
                  [f"--expert-shards={np_}"])
    for r in range(np_):
        expect(os.path.exists(os.path.join(work, f"shards.rank{r}.vmoe")),
               f"rank file {r}")
    x = inputs(source, case, work, np_)
    common = ["--input", x, "--threads", "1", "--show", "0"]
    rc, out_one = run([vmoe_run, one, *common, "--output",
                       os.path.join(work, "one.npy")], work)
    expect(rc == 0, "one process")
    rc, out_n = run([vmoe_run, shards, *common, "--output",
                     os.path.join(work, "shards.npy"), "--mpi-timeout", "60"],
                    work, mpirun, np_)
    expect(rc == 0, f"{np_} ranks")
    a = np.load(os.path.join(work, "one.npy"))
    b = np.load(os.path.join(work, "shards.npy"))
    expect(a.shape == b.shape, f"shapes {a.shape} and {b.shape}")
    differ = np.count_nonzero(a.view(np.uint32) != b.view(np.uint32))
    expect(differ == 0, f"{differ} logits differ between 1 process and "
           f"{np_} ranks (max |diff| {np.max(np.abs(a - b))})")
    expect(routing_lines(out_one) == routing_lines(out_n),
           "the summed routing statistics differ from one process's")
    expect(len(routing_lines(out_one)) > 0, "routing lines")


def faults(mpirun, np_, compile_, vmoe_run, source, work):
    case = "random-e8"
    x = inputs(source, case, work, np_)
    # Shards of another rank count: every rank refuses.
    other = os.path.join(work, "twice.vmoe")
    compile_model(compile_, source, case, work, other,
                  [f"--expert-shards={2 * np_ if np_ < 8 else 2}"])
    out_path = os.path.join(work, "out.npy")
    rc, out = run([vmoe_run, other, "--input", x, "--output", out_path,
                   "--mpi-timeout", "30"], work, mpirun, np_)
    expect(rc != 0, "a rank-count mismatch fails")
    for r in range(np_):
        expect(f"rank {r} of {np_}: " in out and "but the job has" in out,
               f"rank {r} says why")
    expect(not os.path.exists(out_path), "no output")
    # Rank files of two compiles (other random weights) mixed.
    a = os.path.join(work, "a.vmoe")
    b = os.path.join(work, "b.vmoe")
    compile_model(compile_, source, case, work, a, [f"--expert-shards={np_}"])
    compile_model(compile_, source, case, work, b, [f"--expert-shards={np_}"],
                  seed=2)
    shutil.copy(os.path.join(work, "b.rank1.vmoe"),
                os.path.join(work, "a.rank1.vmoe"))
    rc, out = run([vmoe_run, a, "--input", x, "--output", out_path,
                   "--mpi-timeout", "30"], work, mpirun, np_)
    expect(rc != 0, "mixed compiles fail")
    for r in range(np_):
        expect(f"rank {r} of {np_}: " in out, f"rank {r} says why")
    expect("rank 1 holds a part of another model" in out, "the cause")
    expect(not os.path.exists(out_path), "no output")


def main():
    mpirun, np_, case, compile_, vmoe_run, source, work = sys.argv[1:8]
    np_ = int(np_)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    if case == "faults":
        faults(mpirun, np_, compile_, vmoe_run, source, work)
    else:
        equality(mpirun, np_, case, compile_, vmoe_run, source, work)
    print("PASS")


if __name__ == "__main__":
    main()
