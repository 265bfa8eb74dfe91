"""What the mpirun tests share: running a command (under mpirun when given)
within a time bound, printing it with its exit status and output."""

import subprocess
import sys
import time


def run(cmd, cwd, bound_s, mpirun=None, np_=0):
    """Runs `cmd` (under `mpirun -np np_` when `mpirun` is given); a run past
    `bound_s` seconds fails the test instead of hanging it. Returns (exit
    status, stdout + stderr)."""
    if mpirun:
        cmd = [mpirun, "--allow-run-as-root", "--oversubscribe",
               "--mca", "btl", "self,vader", "-np", str(np_)] + cmd
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              timeout=bound_s)
    except subprocess.TimeoutExpired as e:
        sys.exit(f"FAIL: {' '.join(cmd)} did not end in {bound_s} s\n"
                 f"{e.stdout}\n{e.stderr}")
    out = proc.stdout + proc.stderr
    print(f"$ {' '.join(cmd)}  ->  exit {proc.returncode} in "
          f"{time.monotonic() - start:.1f} s")
    print(out)
    return proc.returncode, out
