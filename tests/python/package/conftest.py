"""Shared fixtures of the vmoe package's tests: the bundled Fashion-MNIST
model compiled once per test process, its sample images, and the build's
tools. ctest sets VMOE_SOURCE_DIR, VMOE_BUILD_DIR and PYTHONPATH
(python/CMakeLists.txt); by hand:

  PYTHONPATH=build/python /usr/bin/python3 -m pytest tests/python/package
"""
import os
import pathlib
import subprocess

import numpy as np
import pytest

import vmoe

SOURCE_DIR = pathlib.Path(os.environ.get(
    "VMOE_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[3]))
BUILD_DIR = pathlib.Path(os.environ.get("VMOE_BUILD_DIR",
                                        SOURCE_DIR / "build"))
MODEL_DIR = SOURCE_DIR / "models" / "fashion-mnist"
TINY_MLIR = SOURCE_DIR / "examples" / "tiny-vmoe.mlir"


def tool(name):
    path = BUILD_DIR / "bin" / name
    assert path.is_file(), f"{path} is missing: build the project first"
    return path


@pytest.fixture(scope="session")
def fm_path(tmp_path_factory):
    """The bundled model, compiled as scripts/demo.sh compiles it."""
    out = tmp_path_factory.mktemp("modules") / "fashion-mnist.vmoe"
    vmoe.compile(MODEL_DIR / "config.json", weights=MODEL_DIR / "weights.npz",
                 output=out, batch=8, max_capacity_factor=2.0)
    return out


@pytest.fixture(scope="session")
def fm(fm_path):
    return vmoe.load(fm_path)


@pytest.fixture(scope="session")
def samples():
    """images (256, 28, 28) uint8, inputs (256, 28, 28, 1) float32 in
    [-1, 1], labels, and the PyTorch implementation's golden logits."""
    with np.load(MODEL_DIR / "samples.npz") as npz:
        return {k: npz[k] for k in npz.files}


def run_tool(*args, check=True):
    proc = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc
