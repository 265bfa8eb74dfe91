#!/usr/bin/env python3
"""Runs one expert-parallel scenario under mpirun and checks every rank.

usage: mpi_test.py MPIRUN NP SCENARIO CHECK_BINARY VMOE_RUN WORKDIR

Scenarios of vmoe_mpi_shard_check (ShardCheck.cpp) and of vmoe-run on shard
files that it writes. Every run has a wall-clock bound: a job that does not
end in time fails the test (a hang is a failure, never a stuck CI job).
"""
import os
import subprocess
import sys
import time

import numpy as np

import mpirun_support

BOUND_S = 60  # any scenario, fault cases included, ends well inside this


def mpirun(mpirun_path, np_, args, cwd):
    return mpirun_support.run(args, cwd, BOUND_S, mpirun_path, np_)


def expect(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)


def every_rank(out, np_, text):
    for r in range(np_):
        line = next((l for l in out.splitlines()
                     if l.startswith(f"rank {r}:")), None)
        expect(line is not None and text in line,
               f"rank {r} does not report '{text}' (got {line!r})")


def shard_input(rank, images, t):
    # ShardSupport.h's shardInput, for the images of one rank.
    x = (0.5 * (np.arange(images * t) % 64) + 0.25 * rank).astype(np.float32)
    return x.reshape(images, t)


def expected_y(np_, per_rank, t=4, group=4, max_batch=4, cf=1.0, experts=2):
    """What vmoe-run's output "y" holds for each rank's slice: the first
    B * T floats received (ShardSupport.h), per call of the compiled batch."""
    e = experts * np_
    capacity = min(group, int(np.ceil(group * cf / e)))
    ys = []
    for r in range(np_):
        x_all = [shard_input(0, per_rank * np_, t)[j * per_rank:(j + 1) *
                                                    per_rank].reshape(-1)
                 for j in range(np_)]
        rows = []
        for start in range(0, per_rank, max_batch):
            b = min(max_batch, per_rank - start)
            tokens = b * t
            groups = (tokens + group - 1) // group
            chunk = groups + groups * capacity
            recv = []
            for j in range(np_):
                xj = x_all[j][start * t:start * t + tokens]
                recv += [1000 * j + 100 * r + xj[q % tokens]
                         for q in range(chunk)]
            rows.append(np.array(recv[:tokens], np.float32).reshape(b, t))
        ys.append(np.concatenate(rows))
    return np.concatenate(ys)


def run_vmoe(mpirun_path, np_, check, vmoe_run, work, shards, extra=()):
    prefix = os.path.join(work, f"toy{np_}-{shards}")
    subprocess.run([check, "write", prefix, str(shards)], check=True)
    images = 8 * np_
    x = shard_input(0, images, 4)
    xpath = os.path.join(work, f"x{np_}.npy")
    np.save(xpath, x)
    ypath = os.path.join(work, f"y{np_}-{shards}.npy")
    if os.path.exists(ypath):
        os.remove(ypath)
    rc, out = mpirun(mpirun_path, np_,
                     [vmoe_run, prefix + ".vmoe", "--input", xpath,
                      "--output", os.path.join(work, "recv.npy"),
                      "--output", ypath, "--threads", "1",
                      "--mpi-timeout", "10", *extra], work)
    return rc, out, ypath, images


def rank_pid(marker, rank):
    """The pid of the vmoe-run process of `rank` whose command line holds
    `marker` (Open MPI tells each process its rank in the environment)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            if marker.encode() not in cmd or b"mpiexec" in cmd or \
                    b"mpirun" in cmd:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            return int(pid)
    return None


def vmoe_run_kill(mpirun_path, np_, check, vmoe_run, work):
    """Kills rank 1 of a long vmoe-run job: every rank ends, the survivors
    say why, and no output file appears."""
    prefix = os.path.join(work, f"kill{np_}")
    subprocess.run([check, "write", prefix, str(np_)], check=True)
    xpath = os.path.join(work, "x.npy")
    np.save(xpath, shard_input(0, 8 * np_, 4))
    ypath = os.path.join(work, "y.npy")
    cmd = [mpirun_path, "--allow-run-as-root", "--oversubscribe",
           "--mca", "btl", "self,vader", "-np", str(np_), vmoe_run,
           prefix + ".vmoe", "--input", xpath, "--output", ypath,
           "--repeat", "1000000", "--threads", "1", "--mpi-timeout", "10"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    pid = None
    while pid is None and time.monotonic() - start < 20:
        time.sleep(0.2)
        pid = rank_pid(prefix, 1)
    if pid is None:
        proc.kill()
        sys.exit("FAIL: rank 1 never started")
    time.sleep(0.5)  # in the middle of its calls
    os.kill(pid, 9)
    try:
        out, _ = proc.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit(f"FAIL: the job did not end in {BOUND_S} s after the kill")
    print(f"$ {' '.join(cmd)}  ->  exit {proc.returncode} in "
          f"{time.monotonic() - start:.1f} s\n{out}")
    expect(proc.returncode != 0, "exit code")
    expect("rank 1" in out and "signal 9" in out, "mpirun names rank 1")
    expect("terminated by mpirun (another rank failed or died)" in out or
           "timed out" in out, "the survivors say why")
    expect(not os.path.exists(ypath), "no output of a failed job")


def main():
    mpirun_path, np_, scenario, check, vmoe_run, work = sys.argv[1:7]
    np_ = int(np_)
    os.makedirs(work, exist_ok=True)
    if scenario == "exchange":
        rc, out = mpirun(mpirun_path, np_, [check, "exchange"], work)
        expect(rc == 0, "exit code")
        every_rank(out, np_, "ok")
    elif scenario == "rank-count":
        rc, out = mpirun(mpirun_path, np_, [check, "shards", str(2 * np_)],
                         work)
        expect(rc != 0, "a module of another rank count must fail the job")
        every_rank(out, np_, f"holds a module of {2 * np_} expert shards, "
                   f"but the job has {np_} ranks")
    elif scenario == "other-model":
        rc, out = mpirun(mpirun_path, np_, [check, "other-model"], work)
        expect(rc != 0, "ranks of different compiles must fail the job")
        every_rank(out, np_, "rank 1 holds a part of another model")
    elif scenario == "kill":
        rc, out = mpirun(mpirun_path, np_, [check, "kill"], work)
        expect(rc != 0, "a killed rank must fail the job")
        # mpirun names the dead rank; the others either time out in their
        # exchange (a message each) or are ended by mpirun.
        expect("rank 1" in out and ("signal 9" in out or "Killed" in out or
                                    "timed out" in out),
               "mpirun or the survivors name the dead rank")
        expect("rank 0: ok" not in out, "rank 0 cannot finish without rank 1")
    elif scenario == "vmoe-run":
        rc, out, ypath, images = run_vmoe(mpirun_path, np_, check, vmoe_run,
                                          work, np_)
        expect(rc == 0, "exit code")
        y = np.load(ypath)
        want = expected_y(np_, images // np_)
        expect(y.shape == want.shape, f"shape {y.shape} != {want.shape}")
        expect(np.array_equal(y, want), "gathered outputs differ")
        expect(f"ranks: {np_}, each on {images // np_} image(s)" in out,
               "rank 0's report")
        expect(out.count("summary,") == 1, "one report, from rank 0")
        # Outside mpirun: --info names the shard, a run asks for mpirun.
        prefix = os.path.join(work, f"toy{np_}-{np_}")
        info = subprocess.run([vmoe_run, prefix + ".rank1.vmoe", "--info"],
                              capture_output=True, text=True, timeout=BOUND_S)
        print(info.stdout)
        expect(f"expert shard 1 of {np_} (model id" in info.stdout,
               "--info names the shard")
        alone = subprocess.run([vmoe_run, prefix + ".rank1.vmoe"],
                               capture_output=True, text=True,
                               timeout=BOUND_S)
        print(alone.stderr)
        expect(alone.returncode == 1 and "run it under mpirun" in alone.stderr,
               "a shard outside mpirun gets a clear error")
    elif scenario == "vmoe-run-rank-count":
        rc, out, ypath, _ = run_vmoe(mpirun_path, np_, check, vmoe_run, work,
                                     2 * np_)
        expect(rc != 0, "exit code")
        for r in range(np_):
            expect(f"rank {r} of {np_}: " in out and "but the job has" in out,
                   f"rank {r}'s message")
        expect(not os.path.exists(ypath), "no output of a failed run")
    elif scenario == "vmoe-run-split":
        # 8 * np + 1 images do not split into whole groups per rank.
        prefix = os.path.join(work, f"split{np_}")
        subprocess.run([check, "write", prefix, str(np_)], check=True)
        xpath = os.path.join(work, "odd.npy")
        np.save(xpath, shard_input(0, 8 * np_ + 1, 4))
        rc, out = mpirun(mpirun_path, np_, [vmoe_run, prefix + ".vmoe",
                                            "--input", xpath,
                                            "--mpi-timeout", "10"], work)
        expect(rc != 0, "exit code")
        expect("do not split into" in out, "the split rule's message")
    elif scenario == "vmoe-run-kill":
        vmoe_run_kill(mpirun_path, np_, check, vmoe_run, work)
    else:
        sys.exit(f"unknown scenario {scenario}")
    print("PASS")


if __name__ == "__main__":
    main()
