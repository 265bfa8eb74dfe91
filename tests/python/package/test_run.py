"""Running numpy arrays: the same logits and routing as vmoe-run on the same
module and images, the per-call knobs and what they do to routing, the
no-copy input path, the GIL, and the errors bad inputs give."""
import re
import threading

import numpy as np
import pytest

import vmoe
from conftest import run_tool, tool

ROUTING_LINE = re.compile(
    r"MoE layer (\d+): k \d+, capacity (\d+) \(factor ([0-9.e+-]+)\), BPR (on|off), "
    r"kept (\d+) of (\d+) assignments")


def vmoe_run(module_path, images, tmp_path, *flags):
    """vmoe-run on `images` (saved as .npy): its logits and its routing
    lines [(layer, capacity, bpr, kept, assignments)]."""
    images_path = tmp_path / "images.npy"
    logits_path = tmp_path / "logits.npy"
    np.save(images_path, images)
    out = run_tool(tool("vmoe-run"), module_path, "--input", images_path,
                   "--output", logits_path, "--show", "0", *flags).stdout
    routing = [(int(m[1]), int(m[2]), m[4] == "on", int(m[5]), int(m[6]))
               for m in ROUTING_LINE.finditer(out)]
    return np.load(logits_path), routing


def routing_of(stats):
    return [(l["layer"], l["capacity"], l["bpr"], l["assignments_kept"],
             l["assignments"]) for l in stats["layers"]]


@pytest.mark.parametrize("cf,bpr", [(None, None), (0.5, True), (0.5, False),
                                    (0.1, True)])
def test_logits_and_routing_equal_vmoe_runs(fm, fm_path, samples, tmp_path,
                                            cf, bpr):
    flags = []
    if cf is not None:
        flags += ["--capacity-factor", str(cf)]
    if bpr is not None:
        flags += ["--bpr", "on" if bpr else "off"]
    want, want_routing = vmoe_run(fm_path, samples["images"], tmp_path,
                                  *flags)
    session = fm.session(threads=2)
    # uint8 pixels (converted as vmoe-run converts them) and the same
    # images as float32 in [-1, 1]: the same bits.
    got = session.run(samples["images"], capacity_factor=cf, bpr=bpr)
    assert got.dtype == np.float32 and got.shape == (256, 10)
    assert np.array_equal(got, want)
    assert routing_of(session.routing_stats()) == want_routing
    floats = samples["images"].astype(np.float32) / 255 * 2 - 1
    assert np.array_equal(session.run(floats[..., None], capacity_factor=cf,
                                      bpr=bpr), want)


def test_k_per_call_equals_vmoe_runs(fm, fm_path, samples, tmp_path):
    # The bundled model is compiled with k = 2; k = 1 for one call routes
    # every token to its best expert only, with the capacity of k = 1.
    want, want_routing = vmoe_run(fm_path, samples["images"], tmp_path,
                                  "--num-selected-experts", "1")
    session = fm.session(threads=2)
    got = session.run(samples["images"], k=1)
    assert np.array_equal(got, want)
    assert routing_of(session.routing_stats()) == want_routing
    for layer in session.routing_stats()["layers"]:
        assert layer["k"] == 1
        assert layer["assignments"] == 256 * 17
        assert layer["capacity"] == vmoe.compute_capacity(136, 1, 8, 1.05)
    # The next call without k is the module's k again.
    assert not np.array_equal(session.run(samples["images"]), want)
    assert session.routing_stats()["layers"][0]["k"] == 2
    with pytest.raises(vmoe.InvalidArgumentError):
        session.run(samples["images"], k=3)
    with pytest.raises(vmoe.InvalidArgumentError):
        session.run(samples["images"], k=0)


def test_logits_match_the_pytorch_golden_ones(fm, samples):
    # Tolerance of tests/e2e (the bundled-model test): two float32
    # implementations of the same math.
    for key, cf, bpr in [("logits", None, None),
                         ("logits_cf0_5_bpr", 0.5, True),
                         ("logits_cf0_5_vanilla", 0.5, False)]:
        got = fm.run(samples["inputs"], capacity_factor=cf, bpr=bpr)
        want = samples[key]
        assert np.abs(got - want).max() < 2e-3, key
        assert np.array_equal(got.argmax(1), want.argmax(1)), key


def test_a_partial_last_step_runs_as_vmoe_run_runs_it(
        fm, fm_path, samples, tmp_path):
    images = samples["inputs"][:13]
    want, want_routing = vmoe_run(fm_path, images, tmp_path)
    session = fm.session(threads=1)
    got = session.run(images)
    assert got.shape == (13, 10)
    assert np.array_equal(got, want)
    stats = session.routing_stats()
    assert routing_of(stats) == want_routing
    # 13 images run as 8 + 5: the last call ends inside a routing group of
    # 8 images and routes only its own 5 (no padding, nothing copied).
    layer = stats["layers"][0]
    assert layer["images"] == 13
    assert layer["assignments"] == 13 * 17 * 2
    assert layer["image_coverage"].shape == (13,)
    assert session.input_bytes_copied == 0


def test_knobs_change_routing_statistics(fm, samples):
    images = samples["inputs"]
    session = fm.session(threads=2)
    shares = {}
    for cf in [2.0, 1.05, 0.5, 0.1]:
        for bpr in [True, False]:
            session.run(images, capacity_factor=cf, bpr=bpr)
            stats = session.routing_stats()
            for layer in stats["layers"]:
                assert layer["capacity_factor"] == cf
                assert layer["bpr"] is bpr
                assert layer["capacity"] == vmoe.compute_capacity(
                    136, 2, 8, cf)
                # 256 images of 17 tokens, 2 experts each.
                assert layer["assignments"] == 256 * 17 * 2
                assert layer["assignments_kept"] + \
                    layer["assignments_dropped"] == layer["assignments"]
                assert layer["expert_assigned"].sum() == layer["assignments"]
                assert layer["expert_kept"].sum() == \
                    layer["assignments_kept"]
                # No expert keeps more than capacity x groups (32 groups).
                assert layer["expert_kept"].max() <= layer["capacity"] * 32
                assert layer["image_coverage"].shape == (256,)
                assert layer["min_image_coverage"] == \
                    layer["image_coverage"].min()
            shares[cf, bpr] = stats["kept_share"]
    # Capacity factor 2 keeps every assignment; lower ones keep fewer.
    assert shares[2.0, True] == shares[2.0, False] == 1.0
    assert shares[1.05, False] > shares[0.5, False] > shares[0.1, False]
    # At a low capacity BPR keeps other assignments: other logits.
    on = session.run(images, capacity_factor=0.25, bpr=True)
    off = session.run(images, capacity_factor=0.25, bpr=False)
    assert not np.array_equal(on, off)


def test_per_call_knobs_do_not_stick(fm, samples):
    images = samples["inputs"][:16]
    session = fm.session(threads=1, capacity_factor=0.5, bpr=True)
    session.run(images)
    layer = session.routing_stats()["layers"][0]
    assert (layer["capacity_factor"], layer["bpr"]) == (0.5, True)
    session.run(images, capacity_factor=0.25, bpr=False)
    layer = session.routing_stats()["layers"][0]
    assert (layer["capacity_factor"], layer["bpr"]) == (0.25, False)
    session.run(images)
    layer = session.routing_stats()["layers"][0]
    assert (layer["capacity_factor"], layer["bpr"]) == (0.5, True)
    # Module.run: the module's defaults (1.05, BPR off) unless overridden.
    fm.run(images)
    layer = fm.routing_stats()["layers"][0]
    assert (layer["capacity_factor"], layer["bpr"]) == (1.05, False)


def test_threads_change_nothing_but_the_threads(fm, samples):
    images = samples["inputs"][:64]
    one = fm.session(threads=1)
    two = fm.session(threads=2)
    assert (one.threads, two.threads) == (1, 2)
    assert np.array_equal(one.run(images, capacity_factor=0.5),
                          two.run(images, capacity_factor=0.5))
    assert np.array_equal(fm.run(images, threads=1),
                          fm.run(images, threads=2))


def test_float32_input_is_read_in_place(fm, samples):
    session = fm.session(threads=1)
    images = samples["inputs"][:32]
    assert images.flags.c_contiguous and images.dtype == np.float32
    session.run(images)
    assert session.input_bytes_copied == 0
    # Read-only memory is fine: the runtime only reads the images.
    frozen = images.copy()
    frozen.flags.writeable = False
    session.run(frozen)
    assert session.input_bytes_copied == 0
    # uint8 pixels are the one conversion, and say so.
    session.run(samples["images"][:32])
    assert session.input_bytes_copied == 32 * 28 * 28 * 4
    # out=: the logits land in the caller's array.
    out = np.full((32, 10), np.nan, dtype=np.float32)
    result = session.run(images, out=out)
    assert result is out or np.shares_memory(result, out)
    assert np.array_equal(out, session.run(images))


def test_bad_inputs_raise(fm, samples):
    session = fm.session(threads=1)
    images = samples["inputs"][:8]
    with pytest.raises(TypeError, match="float32"):
        session.run(images.astype(np.float64))
    with pytest.raises(TypeError, match="float32"):
        session.run(images.astype(">f4"))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        session.run(images.tolist())
    with pytest.raises(vmoe.InvalidArgumentError, match="C-contiguous"):
        session.run(np.asfortranarray(images))
    with pytest.raises(vmoe.InvalidArgumentError, match="C-contiguous"):
        session.run(samples["inputs"][:16:2])
    with pytest.raises(vmoe.InvalidArgumentError,
                       match=r"\(-1, 28, 28, 1\)"):
        session.run(np.zeros((8, 32, 32, 1), np.float32))
    with pytest.raises(vmoe.InvalidArgumentError, match="images\\[None\\]"):
        session.run(images[0])
    with pytest.raises(vmoe.InvalidArgumentError, match="no images"):
        session.run(images[:0])
    # The knobs: the runtime's own checks and messages.
    with pytest.raises(vmoe.InvalidArgumentError, match="maximum"):
        session.run(images, capacity_factor=4.0)
    for cf in [0, -1, float("nan"), float("inf")]:
        with pytest.raises(vmoe.InvalidArgumentError):
            session.run(images, capacity_factor=cf)
    with pytest.raises(TypeError):
        session.run(images, bpr="on")
    with pytest.raises(vmoe.InvalidArgumentError):
        vmoe.Session(fm, threads=-1)
    with pytest.raises(vmoe.InvalidArgumentError):
        vmoe.Session(fm, device="tpu")
    with pytest.raises(vmoe.InvalidArgumentError, match="shape"):
        session.run(images, out=np.zeros((7, 10), np.float32))
    with pytest.raises(vmoe.InvalidArgumentError, match="overlaps"):
        session.run(images, out=images.reshape(-1)[:80].reshape(8, 10))
    # A failed call leaves no statistics behind.
    with pytest.raises(vmoe.FailedPreconditionError):
        session.routing_stats()
    session.run(images)
    session.routing_stats()
    with pytest.raises(vmoe.InvalidArgumentError):
        session.run(images, capacity_factor=4.0)
    with pytest.raises(vmoe.FailedPreconditionError, match="successful run"):
        session.routing_stats()


def test_the_gil_is_released_while_running(fm, samples):
    """While one thread runs a long call, another thread runs Python: it
    sees the session busy (a GIL held through the call would let it run
    only before or after) and its own call on that session is refused."""
    session = fm.session(threads=1)
    images = np.ascontiguousarray(np.tile(samples["inputs"], (24, 1, 1, 1)))
    errors = []

    def work():
        try:
            session.run(images)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    worker = threading.Thread(target=work)
    worker.start()
    seen_busy = False
    refused = None
    while worker.is_alive():
        if session.busy:
            seen_busy = True
            try:
                session.run(samples["inputs"][:8])
            except vmoe.FailedPreconditionError as e:
                refused = e
            break
    worker.join()
    assert not errors
    assert seen_busy, "the call held the GIL"
    assert refused is not None and "one session per thread" in str(refused)
    assert not session.busy
    assert session.routing_stats()["layers"][0]["images"] == len(images)


def test_profile(fm, samples):
    session = fm.session(threads=1, profile=True)
    session.run(samples["inputs"][:16])
    profile = session.profile()
    assert profile["runs"] == 2
    assert len(profile["dispatches"]) == fm.info["dispatches"]
    assert all(d["kernel"] for d in profile["dispatches"])
    assert sum(d["total_ms"] for d in profile["dispatches"]) > 0
    with pytest.raises(vmoe.FailedPreconditionError):
        fm.session(threads=1).profile()
