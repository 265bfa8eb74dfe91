"""Checks of python/vmoe_torch.py against hand-computed and upstream (vmoe) cases.

Run: /usr/bin/python3 tests/python/test_vmoe_torch.py   (exits non-zero on failure)

Tolerances. Two float32 evaluations of the same model differ by float32
rounding only when the summation order changes (another BLAS kernel:
OPENBLAS_CORETYPE=Prescott, Haswell, SkylakeX, ... or another matrix size),
except where vmoe's bf16 dispatcher rounds a value that lies within that
float32 noise of a bf16 rounding midpoint: the two evaluations then round it
to neighbouring bf16 values, one bf16 ulp (2^-8 relative) apart. So every
comparison here is made twice:
  * with bf16 dispatch off, tightly (the float32 bound of the sums involved);
  * with it on, against the bf16 bound (derived where each test says), with
    routing decisions (expert, slot, kept or dropped) compared exactly.
Every test must pass under every OpenBLAS kernel (scripts/test.sh is run with
OPENBLAS_CORETYPE forced to Prescott, Haswell and SkylakeX).
"""
import math
import os
import sys
import unittest

# One BLAS thread: 2-core CI machines run tests in parallel.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
import vmoe_torch as vt  # noqa: E402

torch.set_num_threads(1)


def greedy_positions(gates, k, bpr):
    """Literal per-group greedy loop of reference section 5.1 (numpy, one group)."""
    S, E = gates.shape
    ex = np.zeros((S, k), dtype=np.int64)
    w = np.zeros((S, k), dtype=gates.dtype)
    for s in range(S):
        # top-k, ties to the lower index: sort by (-gate, index)
        order = sorted(range(E), key=lambda e: (-gates[s, e], e))[:k]
        ex[s] = order
        w[s] = gates[s, order]
    order = list(range(S))
    if bpr:
        order = sorted(range(S), key=lambda s: (-w[s, 0], s))
    count = [0] * E
    pos = np.zeros((S, k), dtype=np.int64)
    for j in range(k):
        for s in order:
            pos[s, j] = count[ex[s, j]]
            count[ex[s, j]] += 1
    return w, ex, pos


class RoutingTest(unittest.TestCase):
    GATES = torch.tensor([[[.4, .0, .2], [.5, .1, .4], [.3, .2, .6]]])

    def test_worked_example_vanilla(self):
        cw = vt.combine_weights(self.GATES, 2, 2, batch_priority=False)
        expected = torch.tensor([[[.4, 0], [0, 0], [0, .2]],
                                 [[0, .5], [0, 0], [0, 0]],
                                 [[0, 0], [0, 0], [.6, 0]]])
        torch.testing.assert_close(cw[0], expected)

    def test_worked_example_bpr(self):
        cw = vt.combine_weights(self.GATES, 2, 2, batch_priority=True)
        expected = torch.tensor([[[0, .4], [0, 0], [0, 0]],
                                 [[.5, 0], [0, 0], [0, .4]],
                                 [[0, 0], [0, 0], [.6, 0]]])
        torch.testing.assert_close(cw[0], expected)

    def test_top_k_ties_lower_index(self):
        g = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.1, 0.4, 0.4, 0.1]])
        w, idx = vt.top_k_lower_index(g, 2)
        self.assertEqual(idx.tolist(), [[0, 1], [1, 2]])
        torch.testing.assert_close(w, torch.tensor([[0.25, 0.25], [0.4, 0.4]]))

    def test_bpr_priority_is_top1_not_sum(self):
        # token 0: top1 .5, top-2 sum .95; token 1: top1 .6, top-2 sum .9. Both pick
        # expert 0 first. BPR orders by the top-1 gate, so token 1 gets slot 0.
        g = torch.tensor([[[.5, .45, .05], [.6, .1, .3]]])
        w, ex = vt.top_k_lower_index(g, 2)
        pos = vt.assign_slots(w, ex, 3, batch_priority=True)
        self.assertEqual(pos[0, :, 0].tolist(), [1, 0])
        pos = vt.assign_slots(w, ex, 3, batch_priority=False)
        self.assertEqual(pos[0, :, 0].tolist(), [0, 1])

    def test_counters_count_past_capacity(self):
        # Four tokens all prefer expert 0 then expert 1; C=1: positions keep increasing.
        g = torch.tensor([[[.7, .2, .1]] * 4])
        w, ex = vt.top_k_lower_index(g, 2)
        pos = vt.assign_slots(w, ex, 3, batch_priority=False)
        self.assertEqual(pos[0].tolist(), [[0, 0], [1, 1], [2, 2], [3, 3]])

    def test_random_against_greedy_loop(self):
        rng = np.random.RandomState(0)
        for trial in range(200):
            S, E, k = rng.randint(1, 24), rng.randint(2, 9), 0
            k = rng.randint(1, E + 1)
            # quantised gates to create ties
            raw = rng.randint(0, 4, size=(S, E)).astype(np.float32) + 1e-3
            gates = raw / raw.sum(-1, keepdims=True)
            bpr = bool(trial % 2)
            w_ref, ex_ref, pos_ref = greedy_positions(gates, k, bpr)
            w, ex = vt.top_k_lower_index(torch.from_numpy(gates)[None], k)
            pos = vt.assign_slots(w, ex, E, bpr)
            np.testing.assert_array_equal(ex[0].numpy(), ex_ref)
            np.testing.assert_array_equal(pos[0].numpy(), pos_ref)

    def test_capacity(self):
        self.assertEqual(vt.compute_capacity(400 * 2, 32, 1.05), 28)
        self.assertEqual(vt.compute_capacity(400 * 2, 32, 0.5), 16)
        self.assertEqual(vt.compute_capacity(400 * 2, 8, 1.05), 108)
        self.assertEqual(vt.compute_capacity(1576 * 2, 32, 1.05), 104)
        self.assertEqual(vt.compute_capacity(4616 * 2, 8, 1.5), 1732)
        self.assertEqual(vt.compute_capacity(400 * 2, 8, 4.0), 400)
        self.assertEqual(vt.compute_capacity(400 * 2, 8, 0.25), 28)


class AuxLossTest(unittest.TestCase):
    def test_importance(self):
        g = torch.tensor([[[.5, .4, .1], [.3, .3, .4], [.1, .2, .7], [.8, .2, .0]]])
        self.assertAlmostEqual(float(vt.importance_loss(g)[0]), 0.03874999, places=6)

    def test_gshard(self):
        g = torch.tensor([[[.5, .4, .1], [.3, .3, .4], [.1, .2, .7], [.8, .2, .0]]])
        self.assertAlmostEqual(float(vt.gshard_loss(g)[0]), 1.0875, places=6)

    def test_load(self):
        logits = torch.tensor([[[.9, .06, .04], [.7, .18, .12], [.85, .05, .1]]])
        noise = torch.tensor([[[-.037, .026, -.018], [-.074, .045, -.015],
                               [-.067, -.059, .073]]])
        out = vt.load_loss(logits, logits + noise, 0.1, 2)
        self.assertAlmostEqual(float(out[0]), 0.48573864536489236, places=6)


class LayerTest(unittest.TestCase):
    def test_layer_norm_fast_variance(self):
        x = torch.randn(5, 16) * 3 + 1
        s, b = torch.rand(16), torch.randn(16)
        y = vt.layer_norm(x, s, b)
        ref = torch.nn.functional.layer_norm(x, (16,), s, b, eps=1e-6)
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)

    def test_gelu_tanh(self):
        x = torch.linspace(-6, 6, 101)
        ref = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
        torch.testing.assert_close(vt.gelu(x), ref, atol=1e-6, rtol=1e-6)

    def test_bf16_round_rne(self):
        # 1 + 2^-8 is halfway between bf16 1.0 and 1+2^-7: ties to even -> 1.0
        x = torch.tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20])
        self.assertEqual(vt.bf16_round(x).tolist(), [1.0, 1 + 2 ** -6, 1 + 2 ** -7])

    def test_patch_embed_matches_conv(self):
        cfg = vt.make_config(hidden_size=8, num_layers=2, mlp_dim=16, num_heads=2)
        params = vt.init_params(cfg, torch.Generator().manual_seed(0))
        x = torch.rand(3, 28, 28, 1) * 2 - 1
        y = vt.patch_embed(params, x, cfg)
        w = params["embedding/kernel"].permute(3, 2, 0, 1)  # HWIO -> OIHW
        ref = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), w, params["embedding/bias"],
                                         stride=4)
        ref = ref.permute(0, 2, 3, 1).reshape(3, 49, 8)
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)


U32 = 2.0 ** -24  # float32 unit roundoff


def bf16_ulp(x):
    """The spacing of bf16 values at |x| (float64): 2^(e-7) for |x| in [2^e, 2^(e+1))."""
    _, exponent = torch.frexp(x.abs().clamp_min(2.0 ** -126))
    return torch.ldexp(torch.ones_like(x), exponent - 8)


class MoeTest(unittest.TestCase):
    PREFIX = "Encoder/encoderblock_1/Moe/"

    def setUp(self):
        self.cfg = vt.make_config(hidden_size=16, num_layers=2, mlp_dim=32, num_heads=2)
        g = torch.Generator().manual_seed(1)
        self.params = vt.init_params(self.cfg, g)
        for k, v in self.params.items():  # make every parameter non-trivial
            self.params[k] = v + 0.1 * torch.randn(v.shape, generator=g)
        self.T = vt.tokens_per_image(self.cfg)

    def reference_moe(self, y, cf, bpr, bf16):
        """Dense einsum formulation (dispatch and combine tensors, every expert on its
        buffer) in float64. Returns (out, kept mask (G,S,E,C), bound): bound is, per
        element, the largest difference a float32 evaluation may have from out.

        The bound: a float32 sum of n products is off by at most n*u*sum|terms|
        (u = 2^-24) plus the rounding of its result; GELU's slope is at most 1.13;
        the router's float32 logits move each gate by at most 2*max|d logit| of its
        value. With bf16 dispatch the expert outputs are rounded to bf16: two values
        a and b, each rounded to nearest, end up at most |a-b| + ulp_bf16 apart (a
        rounding that flips moves by one bf16 ulp). The expert inputs are rounded
        from the same float32 tokens on both sides, so they cannot flip.
        """
        p = {k: v.double() for k, v in self.params.items()}
        moe = self.cfg["encoder"]["moe"]
        E, S = moe["num_experts"], moe["group_size"]
        B, T, D = y.shape
        M = self.cfg["transformer"]["mlp_dim"]
        w0, b0 = p[self.PREFIX + "Mlp/Dense_0/kernel"], p[self.PREFIX + "Mlp/Dense_0/bias"]
        w1, b1 = p[self.PREFIX + "Mlp/Dense_1/kernel"], p[self.PREFIX + "Mlp/Dense_1/bias"]
        wr = p[self.PREFIX + "Router/dense/kernel"]
        yg = y.double().reshape(-1, S, D)
        gates = torch.softmax(yg @ wr, -1)
        C = vt.compute_capacity(S * 2, E, cf)
        cw = vt.combine_weights(gates, 2, C, bpr)            # (G,S,E,C)
        dw = (cw > 0).to(yg.dtype)
        xin = vt.bf16_round(yg) if bf16 else yg
        xe = torch.einsum("gsec,gsd->gecd", dw, xin)
        pre = (torch.einsum("gecd,edm->gecm", xe, w0) + b0[None, :, None])
        h = vt.gelu(pre)
        ye = torch.einsum("gecm,emd->gecd", h, w1) + b1[None, :, None]
        yr = vt.bf16_round(ye) if bf16 else ye
        out = torch.einsum("gsec,gecd->gsd", cw, yr)

        e_pre = (D + 2) * U32 * (torch.einsum("gecd,edm->gecm", xe.abs(), w0.abs())
                                 + b0.abs()[None, :, None])
        e_h = 1.13 * e_pre + 8 * U32 * (pre.abs() + h.abs())
        e_ye = ((M + 2) * U32 * (torch.einsum("gecm,emd->gecd", h.abs(), w1.abs())
                                 + b1.abs()[None, :, None])
                + torch.einsum("gecm,emd->gecd", e_h, w1.abs()))
        if bf16:
            e_ye = e_ye + bf16_ulp(ye.abs() + e_ye)
        logit_err = (D + 2) * U32 * (yg.abs() @ wr.abs()).amax(-1) + 8 * U32   # (G,S)
        gate_rel = 2 * logit_err[:, :, None, None] + 8 * U32
        bound = (torch.einsum("gsec,gecd->gsd", cw, e_ye)
                 + torch.einsum("gsec,gecd->gsd", cw * gate_rel, yr.abs())
                 + 4 * U32 * torch.einsum("gsec,gecd->gsd", cw, yr.abs()))
        return out.reshape(B, T, D), cw > 0, bound.reshape(B, T, D)

    def check_against_reference(self, bf16):
        D = self.cfg["hidden_size"]
        y = torch.randn(16, self.T, D, generator=torch.Generator().manual_seed(2))
        E = self.cfg["encoder"]["moe"]["num_experts"]
        for cf in (2.0, 1.05, 0.5, 0.25):
            for bpr in (False, True):
                with self.subTest(cf=cf, bpr=bpr):
                    out, st, _ = vt.moe_mlp(self.params, self.PREFIX, y, self.cfg, cf, bpr,
                                            bfloat16=bf16)
                    ref, kept, bound = self.reference_moe(y, cf, bpr, bf16)
                    # Routing decisions exactly: the float32 router keeps the same
                    # (token, expert, slot) assignments as the float64 one.
                    S = self.cfg["encoder"]["moe"]["group_size"]
                    gates32 = torch.softmax(
                        y.reshape(-1, S, D) @ self.params[self.PREFIX + "Router/dense/kernel"],
                        -1)
                    kept32 = vt.combine_weights(gates32, 2, kept.shape[-1], bpr) > 0
                    self.assertTrue(torch.equal(kept32, kept))
                    self.assertEqual(st["kept"], int(kept.sum()))
                    self.assertEqual(st["kept"] + st["dropped"], st["assignments"])
                    if cf == 2.0:
                        self.assertEqual(st["dropped"], 0)
                    excess = (out.double() - ref).abs() - bound
                    self.assertLessEqual(float(excess.max()), 0.0,
                                         f"bound {float(bound.max()):.3g}")
                    self.assertEqual(st["capacity"], kept.shape[-1])
                    self.assertEqual(E, kept.shape[2])

    def test_moe_matches_einsum_reference_float32_bound(self):
        # bf16 dispatch off: float32 rounding only (bounds of about 1e-6).
        self.check_against_reference(bf16=False)

    def test_moe_matches_einsum_reference_bf16_bound(self):
        # vmoe's bf16 dispatcher: the float32 bound plus one bf16 ulp per output.
        self.check_against_reference(bf16=True)

    def test_bf16_bound_is_tight_enough_to_fail(self):
        # The bound must not hide a real error: a 1% change of one expert's output
        # bias exceeds it.
        D = self.cfg["hidden_size"]
        y = torch.randn(8, self.T, D, generator=torch.Generator().manual_seed(3))
        ref, _, bound = self.reference_moe(y, 2.0, False, True)
        params = dict(self.params)
        b1 = params[self.PREFIX + "Mlp/Dense_1/bias"].clone()
        b1[0] += 0.01 * b1[0].abs().max()
        params[self.PREFIX + "Mlp/Dense_1/bias"] = b1
        out, _, _ = vt.moe_mlp(params, self.PREFIX, y, self.cfg, 2.0, False, bfloat16=True)
        self.assertGreater(float(((out.double() - ref).abs() - bound).max()), 0.0)

    def test_moe_gradients_match_einsum_reference(self):
        # In float64 with bf16 dispatch off: the index formulation and the einsum one
        # compute the same function, so their gradients agree to float64 rounding.
        D = self.cfg["hidden_size"]
        prefix = self.PREFIX
        names = [prefix + n for n in ("Mlp/Dense_0/kernel", "Mlp/Dense_0/bias",
                                      "Mlp/Dense_1/kernel", "Mlp/Dense_1/bias",
                                      "Router/dense/kernel")]
        y0 = torch.randn(8, self.T, D, dtype=torch.float64)
        base = {k: v.double() for k, v in self.params.items()}
        S = self.cfg["encoder"]["moe"]["group_size"]
        E = self.cfg["encoder"]["moe"]["num_experts"]
        grads = []
        for use_ref in (False, True):
            y = y0.clone().requires_grad_(True)
            p = {k: (v.detach().clone().requires_grad_(True) if k in names else v)
                 for k, v in base.items()}
            if use_ref:
                yg = y.reshape(-1, S, D)
                gates = torch.softmax(yg @ p[names[4]], -1)
                cw = vt.combine_weights(gates, 2, vt.compute_capacity(S * 2, E, 0.5), True)
                xe = torch.einsum("gsec,gsd->gecd", (cw > 0).double(), yg)
                h = vt.gelu(torch.einsum("gecd,edm->gecm", xe, p[names[0]])
                            + p[names[1]][None, :, None])
                ye = torch.einsum("gecm,emd->gecd", h, p[names[2]]) + p[names[3]][None, :, None]
                out = torch.einsum("gsec,gecd->gsd", cw, ye).reshape(y.shape)
            else:
                out = vt.moe_mlp(p, prefix, y, self.cfg, 0.5, True, bfloat16=False)[0]
            weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64)
            (out * weights.view(out.shape)).sum().backward()
            grads.append([y.grad] + [p[n].grad for n in names])
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)

    def test_grouping_independent(self):
        # Routing is per group of 8 images: batch of 16 == two batches of 8. Other
        # matrix sizes sum in another order: exact routing, float32 bound (bf16 off),
        # and with bf16 on the same kept assignments.
        x = torch.rand(16, 28, 28, 1) * 2 - 1
        for bf16 in (False, True):
            a, ia = vt.forward(self.params, x, self.cfg, capacity_factor=0.5, bfloat16=bf16)
            b1, i1 = vt.forward(self.params, x[:8], self.cfg, capacity_factor=0.5,
                                bfloat16=bf16)
            b2, i2 = vt.forward(self.params, x[8:], self.cfg, capacity_factor=0.5,
                                bfloat16=bf16)
            for la, l1, l2 in zip(ia["moe"], i1["moe"], i2["moe"]):
                self.assertEqual(la["kept"], l1["kept"] + l2["kept"])
                self.assertEqual(la["kept_per_choice"],
                                 [p + q for p, q in zip(l1["kept_per_choice"],
                                                        l2["kept_per_choice"])])
            if not bf16:
                torch.testing.assert_close(a, torch.cat([b1, b2]), atol=1e-5, rtol=1e-5)

    def test_dropped_tokens_contribute_zero(self):
        D = self.cfg["hidden_size"]
        y = torch.randn(8, self.T, D)
        out, st, _ = vt.moe_mlp(self.params, "Encoder/encoderblock_1/Moe/", y, self.cfg,
                                0.1, False)
        self.assertGreater(st["tokens_fully_dropped"], 0)
        zero_rows = (out.reshape(-1, D).abs().sum(-1) == 0).sum()
        self.assertEqual(int(zero_rows), st["tokens_fully_dropped"])

    def test_train_noise_and_aux(self):
        x = torch.rand(8, 28, 28, 1) * 2 - 1
        g = torch.Generator().manual_seed(0)
        _, i1 = vt.forward(self.params, x, self.cfg, train=True, generator=g)
        self.assertTrue(torch.isfinite(i1["aux_loss"]))
        l1, _ = vt.forward(self.params, x, self.cfg)
        l2, _ = vt.forward(self.params, x, self.cfg)
        torch.testing.assert_close(l1, l2, atol=0, rtol=0)

    def test_npz_roundtrip(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "w.npz")
            vt.save_npz(self.params, path)
            back = vt.load_npz(path)
        self.assertEqual(set(back), set(vt.param_shapes(self.cfg)))
        for k, shape in vt.param_shapes(self.cfg).items():
            self.assertEqual(tuple(back[k].shape), shape)
            torch.testing.assert_close(back[k], self.params[k], atol=0, rtol=0)


class BundledModelTest(unittest.TestCase):
    """The bundled model's golden logits (models/fashion-mnist/samples.npz, made by
    vmoe_torch.forward in float32 with bf16 dispatch on) must be reproducible.

    Bounds. The golden logits were made on another machine whose BLAS summed in
    another order, so some bf16 dispatch roundings flip (see the module's
    docstring): a flip moves a rounded value by one bf16 ulp, at most twice the
    error of the rounding itself (half an ulp). So each image's logits may differ
    from the golden ones by twice the effect of bf16 dispatch on that image,
    |logits(bf16 on) - logits(bf16 off)|, plus the float32 bound. With bf16 off
    two float32 evaluations differ by float32 rounding only: at most 128-term
    sums, a dozen chained, on logits below 5: n*u*depth*|logit| < 1e-4
    (measured: about 2e-6 against float64). Routing (the assignments kept in
    each MoE layer) is compared exactly.
    """

    FP32_BOUND = 1e-4

    @classmethod
    def setUpClass(cls):
        d = os.path.join(ROOT, "models", "fashion-mnist")
        cls.cfg = vt.load_config(os.path.join(d, "config.json"))
        cls.params = vt.load_npz(os.path.join(d, "weights.npz"))
        cls.samples = np.load(os.path.join(d, "samples.npz"))
        cls.x = vt.preprocess_uint8(cls.samples["images"])

    def run_model(self, params, x, cf, bpr, bf16):
        """Logits (float64) and kept assignments per group of 8 images and layer."""
        outs, kept = [], []
        for i in range(0, len(x), 8):
            out, info = vt.forward(params, x[i:i + 8], self.cfg, cf, bpr, bfloat16=bf16)
            outs.append(out.double())
            kept.append([layer["kept"] for layer in info["moe"]])
        return torch.cat(outs).numpy(), np.array(kept)

    def test_inputs_and_parameters(self):
        self.assertEqual(set(self.params), set(vt.param_shapes(self.cfg)))
        np.testing.assert_array_equal(self.x, self.samples["inputs"])

    def test_golden(self):
        x32 = torch.from_numpy(self.x)
        p64 = {k: v.double() for k, v in self.params.items()}
        for key, cf, bpr in (("logits", None, None), ("logits_cf0_5_bpr", 0.5, True),
                             ("logits_cf0_5_vanilla", 0.5, False)):
            with self.subTest(key=key):
                golden = self.samples[key].astype(np.float64)
                on, kept_on = self.run_model(self.params, x32, cf, bpr, True)
                off, kept_off = self.run_model(self.params, x32, cf, bpr, False)
                on64, kept_on64 = self.run_model(p64, x32.double(), cf, bpr, True)
                off64, _ = self.run_model(p64, x32.double(), cf, bpr, False)
                # Routing exactly: float32 and float64 keep the same assignments.
                np.testing.assert_array_equal(kept_on, kept_on64)
                # bf16 off: float32 rounding only.
                np.testing.assert_allclose(off, off64, atol=self.FP32_BOUND, rtol=0)
                # bf16 on: per image, twice the effect of bf16 dispatch.
                bf16_effect = np.abs(on - off).max(axis=1, keepdims=True)
                bound = 2 * bf16_effect + self.FP32_BOUND
                for name, ref in (("golden", golden), ("float64", on64)):
                    excess = np.abs(on - ref) - bound
                    self.assertLessEqual(
                        excess.max(), 0.0,
                        f"{name}: image {int(excess.max(axis=1).argmax())} differs by "
                        f"{np.abs(on - ref).max():.3g} (bound "
                        f"{bound[int(excess.max(axis=1).argmax()), 0]:.3g})")
                # The predicted classes are the golden ones wherever the golden
                # margin between the top two logits exceeds the bound.
                top2 = np.sort(golden, axis=1)[:, -2:]
                clear = (top2[:, 1] - top2[:, 0]) > 2 * bound[:, 0]
                np.testing.assert_array_equal(on.argmax(1)[clear], golden.argmax(1)[clear])
                self.assertGreater(int(clear.sum()), 200)
                # The bound is a few bf16 roundings, not a licence: it stays far
                # below the logits' scale.
                self.assertLess(bound.max(), 0.02)


if __name__ == "__main__":
    unittest.main()
