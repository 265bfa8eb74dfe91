"""The package as `cmake --install` puts it: importable from the install
directory alone (the extension carries the runtime), and looking for
vmoe-compile in the prefix's bin/."""
import os
import subprocess
import sys

from conftest import BUILD_DIR, run_tool

CHECK = r"""
import os, sys
import numpy as np
import vmoe
prefix = os.path.realpath(sys.argv[1])
assert os.path.realpath(vmoe.__file__).startswith(prefix), vmoe.__file__
module = vmoe.load(sys.argv[2])
logits = module.run(np.zeros((module.batch,) + module.image_shape,
                             np.float32))
assert logits.shape == (module.batch, module.num_classes)
try:
    vmoe.find_compiler()
    raise SystemExit("found a vmoe-compile that is not installed")
except vmoe.ToolNotFoundError as e:
    want = os.path.join(prefix, "bin", "vmoe-compile")
    assert want in str(e), str(e)
print("ok", vmoe.__version__)
"""


def test_installed_package_imports_and_runs(tmp_path, fm_path):
    prefix = tmp_path / "prefix"
    run_tool(os.environ.get("VMOE_CMAKE", "cmake"), "--install", BUILD_DIR,
             "--component", "python", "--prefix", prefix)
    inits = list(prefix.glob("lib/python3*/*-packages/vmoe/__init__.py"))
    assert len(inits) == 1, inits
    package = inits[0].parent
    assert list(package.glob("_vmoe*.so"))
    assert (package / "_build.py").is_file()
    # Only the installed files: no build tree, no vmoe-compile on PATH.
    env = {"PATH": str(tmp_path / "empty"), "PYTHONPATH": str(package.parent),
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHECK, str(prefix),
                           str(fm_path)], env=env, cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok")
