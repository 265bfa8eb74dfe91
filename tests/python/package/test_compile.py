"""Compiling from Python through the vmoe-compile executable: configs and
MLIR, flags, the text stages, failures, and finding the executable."""
import json
import os

import numpy as np
import pytest

import vmoe
from conftest import BUILD_DIR, MODEL_DIR, TINY_MLIR


def test_compile_mlir_to_bytes_and_run():
    data = vmoe.compile(TINY_MLIR, random_weights=1,
                        max_capacity_factor=2.0)
    assert isinstance(data, bytes)
    module = vmoe.load(data)
    assert module.image_shape == (16, 16, 3)
    assert module.moe_layers[0]["max_capacity_factor"] == 2.0
    images = np.random.default_rng(0).uniform(
        -1, 1, (module.batch, 16, 16, 3)).astype(np.float32)
    logits = module.run(images, capacity_factor=2.0)
    assert logits.shape == (module.batch, module.num_classes)
    assert np.isfinite(logits).all()
    # Deterministic: the same seed, the same module bytes, the same logits.
    again = vmoe.load(vmoe.compile(TINY_MLIR, random_weights=1,
                                   max_capacity_factor=2.0))
    assert np.array_equal(again.run(images, capacity_factor=2.0), logits)


def test_flags_reach_the_compiler(tmp_path):
    out = tmp_path / "fm-b1.vmoe"
    path = vmoe.compile(MODEL_DIR / "config.json",
                        weights=MODEL_DIR / "weights.npz", output=out,
                        batch=1, capacity_factor=0.5, bpr=True,
                        name="fm-batch-1")
    assert path == str(out)
    module = vmoe.load(out)
    assert module.batch == 1
    assert module.name == "fm-batch-1"
    for layer in module.moe_layers:
        assert layer["default_capacity_factor"] == 0.5
        assert layer["default_bpr"] is True
        # One image per group when the config's 8 no longer fit.
        assert layer["group_size"] == 17


def test_compile_a_config_dict():
    config = json.loads((MODEL_DIR / "config.json").read_text())
    config["name"] = "from-a-dict"
    module = vmoe.load(vmoe.compile(config,
                                    weights=MODEL_DIR / "weights.npz"))
    assert module.name == "from-a-dict"
    assert module.num_classes == 10


def test_text_stages():
    text = vmoe.compile(TINY_MLIR, random_weights=1, emit="mlir")
    assert isinstance(text, str)
    assert "vmoe.router" in text or "vmoe.top_k" in text
    config = json.loads(vmoe.compile(MODEL_DIR / "config.json", batch=2,
                                     emit="config"))
    assert config["num_classes"] == 10


def test_text_stage_to_a_file(tmp_path):
    out = tmp_path / "tiny.mlir"
    assert vmoe.compile(TINY_MLIR, random_weights=1, emit="mlir",
                        output=out) == str(out)
    assert "func.func" in out.read_text()


def test_failures_raise_compile_error_with_the_message(tmp_path):
    with pytest.raises(vmoe.CompileError) as e:
        vmoe.compile(MODEL_DIR / "config.json",
                     weights=tmp_path / "missing.npz")
    assert "missing.npz" in str(e.value)
    assert e.value.returncode != 0
    assert "missing.npz" in e.value.stderr
    with pytest.raises(vmoe.CompileError):
        vmoe.compile(TINY_MLIR, random_weights=1, no_such_flag=3)
    with pytest.raises(TypeError):
        vmoe.compile(TINY_MLIR, random_weights=[1])


def test_find_compiler(monkeypatch, tmp_path):
    # Run from the build tree: the build's vmoe-compile.
    monkeypatch.delenv(vmoe.COMPILER_ENV, raising=False)
    assert os.path.samefile(vmoe.find_compiler(),
                            BUILD_DIR / "bin" / "vmoe-compile")
    # The environment variable wins, and must name an executable.
    monkeypatch.setenv(vmoe.COMPILER_ENV, str(tmp_path / "nothing"))
    with pytest.raises(vmoe.ToolNotFoundError) as e:
        vmoe.compile(TINY_MLIR, random_weights=1)
    assert vmoe.COMPILER_ENV in str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    monkeypatch.setenv(vmoe.COMPILER_ENV,
                       str(BUILD_DIR / "bin" / "vmoe-compile"))
    assert vmoe.find_compiler() == str(BUILD_DIR / "bin" / "vmoe-compile")
