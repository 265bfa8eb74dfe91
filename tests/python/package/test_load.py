"""Loading modules from Python: files and bytes, the load options of the C
API (weight verification, trusted keys), the module's description, and the
errors a bad file or argument gives."""
import json
import math
import os

import numpy as np
import pytest

import vmoe
from conftest import MODEL_DIR, TINY_MLIR, run_tool, tool


def test_info_describes_the_bundled_model(fm, fm_path):
    info = fm.info
    assert fm.batch == info["batch"] == 8
    # vmoe's groups of 8 images; a call may end inside one (its padding
    # takes no slot, docs/routing.md): any batch from 1 runs.
    assert fm.batch_multiple == 1
    assert fm.image_shape == (28, 28, 1)
    assert fm.num_classes == 10
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert fm.class_names == config["class_names"]
    assert info["inputs"][0]["dtype"] == "f32"
    assert info["inputs"][0]["shape"] == (8, 28, 28, 1)
    assert info["outputs"][0]["shape"] == (8, 10)
    layers = fm.moe_layers
    assert len(layers) == 2
    for layer in layers:
        assert layer["num_experts"] == 8
        assert layer["k"] == 2
        assert layer["group_size"] == 136
        assert layer["default_capacity_factor"] == 1.05
        assert layer["max_capacity_factor"] == 2.0
        assert layer["default_bpr"] is False
        assert layer["max_capacity"] == vmoe.compute_capacity(136, 2, 8, 2.0)
    assert fm.num_experts == [8, 8]
    assert fm.device == "cpu"
    triple, features = fm.target
    assert triple.startswith(("x86_64", "aarch64"))
    assert info["file_size"] == os.path.getsize(fm_path)
    assert info["weight_bytes"] > 0 and info["arena_bytes"] > 0
    assert info["signed"] is False and info["key_id"] is None
    assert info["weights_verified"] is True
    assert json.loads(info["config_json"])["num_classes"] == 10
    assert info["format_version"][0] == vmoe.runtime_format_version()[0]
    # The dict is a copy: changing it changes nothing.
    info["batch"] = 1
    assert fm.batch == 8


def test_load_from_bytes_equals_load_from_file(fm, fm_path, samples):
    data = fm_path.read_bytes()
    from_bytes = vmoe.load(data)
    assert from_bytes.path is None
    assert from_bytes.info == fm.info
    images = samples["inputs"][:8]
    assert np.array_equal(from_bytes.run(images), fm.run(images))
    # Any contiguous buffer; the runtime copies it, so it may change after.
    buffer = bytearray(data)
    module = vmoe.load(memoryview(buffer))
    buffer[:] = bytes(len(buffer))
    assert np.array_equal(module.run(images), fm.run(images))


def test_load_options(fm_path):
    assert vmoe.load(fm_path, verify_weights=False).info[
        "weights_verified"] is False
    assert vmoe.load(fm_path, copy=True).info["weights_verified"] is True


def test_corrupt_and_missing_files_raise_with_the_runtime_message(
        fm, fm_path, samples, tmp_path):
    with pytest.raises(vmoe.IoError) as e:
        vmoe.load(tmp_path / "missing.vmoe")
    assert "missing.vmoe" in str(e.value)
    assert isinstance(e.value, OSError) and e.value.status == "IO_ERROR"

    data = bytearray(fm_path.read_bytes())
    with pytest.raises(vmoe.InvalidModuleError) as e:
        vmoe.load(bytes(data[:1000]))
    assert str(e.value)
    # A flipped byte in the weights (the position embedding, stored as the
    # checkpoint has it): the digest check catches it, and
    # verify_weights=False is the documented way to skip that check.
    with np.load(MODEL_DIR / "weights.npz") as weights:
        pos = weights["Encoder/posembed_input/pos_embedding"]
    at = bytes(data).find(pos.astype(np.float32).tobytes())
    assert at > 0
    data[at + 2] ^= 0xFF
    bad = tmp_path / "flipped.vmoe"
    bad.write_bytes(data)
    with pytest.raises(vmoe.InvalidModuleError) as e:
        vmoe.load(bad)
    assert "digest" in str(e.value) and "constant" in str(e.value)
    unchecked = vmoe.load(bad, verify_weights=False)
    assert unchecked.info["weights_verified"] is False
    images = samples["inputs"][:8]
    assert not np.array_equal(unchecked.run(images), fm.run(images))

    with pytest.raises(TypeError):
        vmoe.load(12)


def test_trusted_keys(tmp_path):
    compiler = vmoe.find_compiler()
    run_tool(compiler, f"--generate-signing-key={tmp_path / 'deploy'}")
    run_tool(compiler, f"--generate-signing-key={tmp_path / 'other'}")
    signed = tmp_path / "signed.vmoe"
    vmoe.compile(TINY_MLIR, output=signed, random_weights=1,
                 sign_key=tmp_path / "deploy.key")
    unsigned = vmoe.compile(TINY_MLIR, random_weights=1)

    module = vmoe.load(signed, trusted_keys=tmp_path / "deploy.pub")
    info = module.info
    assert info["signed"] and info["signature_verified"]
    assert len(info["key_id"]) == 16
    # Without trusted keys the signature is carried but not checked.
    assert not vmoe.load(signed).info["signature_verified"]
    # A raw 32-byte key, and a list of keys of which one signed.
    raw = bytes.fromhex((tmp_path / "deploy.pub").read_text().split()[1])
    assert vmoe.load(signed, trusted_keys=raw).info["signature_verified"]
    assert vmoe.load(signed, trusted_keys=[str(tmp_path / "other.pub"),
                                           raw]).info["signature_verified"]

    with pytest.raises(vmoe.PermissionDeniedError) as e:
        vmoe.load(signed, trusted_keys=tmp_path / "other.pub")
    assert isinstance(e.value, PermissionError)
    with pytest.raises(vmoe.PermissionDeniedError) as e:
        vmoe.load(unsigned, trusted_keys=tmp_path / "deploy.pub")
    assert "sign" in str(e.value)

    with pytest.raises(vmoe.InvalidArgumentError) as e:
        vmoe.load(signed, trusted_keys=tmp_path / "deploy.key")
    assert "vmoe-ed25519-public-key" in str(e.value)
    with pytest.raises(vmoe.InvalidArgumentError):
        vmoe.load(signed, trusted_keys=raw[:31])
    with pytest.raises(FileNotFoundError):
        vmoe.load(signed, trusted_keys=tmp_path / "none.pub")
    with pytest.raises(TypeError):
        vmoe.load(signed, trusted_keys=[3])


def test_compute_capacity_is_vmoes_rule():
    for s, k, e, cf in [(136, 2, 8, 1.05), (136, 2, 8, 0.1), (197, 1, 32, 1),
                        (4096, 2, 8, 0.5)]:
        want = math.ceil(s * k * cf / e)
        want = (want + 3) // 4 * 4
        assert vmoe.compute_capacity(s, k, e, cf) == want
    with pytest.raises(vmoe.InvalidArgumentError):
        vmoe.compute_capacity(136, 2, 8, 0.0)


def test_vmoe_run_info_agrees(fm_path, fm):
    out = run_tool(tool("vmoe-run"), fm_path, "--info").stdout
    assert f"batch {fm.batch}" in out
    for i, layer in enumerate(fm.moe_layers):
        assert (f"MoE layer {i}: E={layer['num_experts']} top-k "
                f"group={layer['group_size']} groups={layer['num_groups']} "
                f"k={layer['k']} ") in out
