"""Checks of python/vmoe_torch.py against hand-computed and upstream (vmoe) cases.

Run: /usr/bin/python3 tests/python/test_vmoe_torch.py   (exits non-zero on failure)
"""
import math
import os
import sys
import unittest

import numpy as np
import torch

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


class MoeTest(unittest.TestCase):
    def setUp(self):
        self.cfg = vt.make_config(hidden_size=16, num_layers=2, mlp_dim=32, num_heads=2)
        g = torch.Generator().manual_seed(1)
        self.params = vt.init_params(self.cfg, g)
        for k, v in self.params.items():  # make every parameter non-trivial
            self.params[k] = v + 0.1 * torch.randn(v.shape, generator=g)
        self.T = vt.tokens_per_image(self.cfg)

    def reference_moe(self, y, prefix, cf, bpr):
        """Dense einsum formulation: dispatch/combine tensors, every expert on its buffer."""
        p, cfg = self.params, self.cfg
        E = cfg["encoder"]["moe"]["num_experts"]
        S = cfg["encoder"]["moe"]["group_size"]
        B, T, D = y.shape
        yg = y.reshape(-1, S, D)
        gates = torch.softmax(yg @ p[prefix + "Router/dense/kernel"], -1)
        C = vt.compute_capacity(S * 2, E, cf)
        cw = vt.combine_weights(gates, 2, C, bpr)            # (G,S,E,C)
        dw = (cw > 0).to(y.dtype)
        xe = torch.einsum("gsec,gsd->gecd", dw, vt.bf16_round(yg))
        h = vt.gelu(torch.einsum("gecd,edm->gecm", xe, p[prefix + "Mlp/Dense_0/kernel"])
                    + p[prefix + "Mlp/Dense_0/bias"][None, :, None])
        ye = (torch.einsum("gecm,emd->gecd", h, p[prefix + "Mlp/Dense_1/kernel"])
              + p[prefix + "Mlp/Dense_1/bias"][None, :, None])
        out = torch.einsum("gsec,gecd->gsd", cw, vt.bf16_round(ye))
        return out.reshape(B, T, D)

    def test_moe_matches_einsum_reference(self):
        D = self.cfg["hidden_size"]
        y = torch.randn(16, self.T, D)
        for cf in (2.0, 1.05, 0.5, 0.25):
            for bpr in (False, True):
                out, st, _ = vt.moe_mlp(self.params, "Encoder/encoderblock_1/Moe/", y,
                                        self.cfg, cf, bpr)
                ref = self.reference_moe(y, "Encoder/encoderblock_1/Moe/", cf, bpr)
                torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
                self.assertEqual(st["kept"] + st["dropped"], st["assignments"])
                if cf == 2.0:
                    self.assertEqual(st["dropped"], 0)

    def test_moe_gradients_match_einsum_reference(self):
        D = self.cfg["hidden_size"]
        prefix = "Encoder/encoderblock_1/Moe/"
        names = [prefix + n for n in ("Mlp/Dense_0/kernel", "Mlp/Dense_0/bias",
                                      "Mlp/Dense_1/kernel", "Mlp/Dense_1/bias",
                                      "Router/dense/kernel")]
        y0 = torch.randn(8, self.T, D)
        grads = []
        for use_ref in (False, True):
            y = y0.clone().requires_grad_(True)
            for n in names:
                self.params[n] = self.params[n].detach().requires_grad_(True)
            if use_ref:
                out = self.reference_moe(y, prefix, 0.5, True)
            else:
                out = vt.moe_mlp(self.params, prefix, y, self.cfg, 0.5, True)[0]
            (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
            grads.append([y.grad] + [self.params[n].grad for n in names])
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)

    def test_grouping_independent(self):
        # Routing is per group of 8 images: batch of 16 == two batches of 8.
        x = torch.rand(16, 28, 28, 1) * 2 - 1
        a, _ = vt.forward(self.params, x, self.cfg, capacity_factor=0.5)
        b1, _ = vt.forward(self.params, x[:8], self.cfg, capacity_factor=0.5)
        b2, _ = vt.forward(self.params, x[8:], self.cfg, capacity_factor=0.5)
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
    """If the bundled model exists, its golden logits must be reproducible."""

    def test_golden(self):
        d = os.path.join(ROOT, "models", "fashion-mnist")
        if not os.path.exists(os.path.join(d, "samples.npz")):
            self.skipTest("no bundled model")
        cfg = vt.load_config(os.path.join(d, "config.json"))
        params = vt.load_npz(os.path.join(d, "weights.npz"))
        self.assertEqual(set(params), set(vt.param_shapes(cfg)))
        s = np.load(os.path.join(d, "samples.npz"))
        x = vt.preprocess_uint8(s["images"])
        np.testing.assert_array_equal(x, s["inputs"])
        for key, cf, bpr in (("logits", None, None), ("logits_cf0_5_bpr", 0.5, True),
                             ("logits_cf0_5_vanilla", 0.5, False)):
            out = torch.cat([vt.forward(params, torch.from_numpy(x[i:i + 8]), cfg, cf, bpr)[0]
                             for i in range(0, len(x), 8)]).numpy()
            np.testing.assert_allclose(out, s[key], atol=1e-4, rtol=1e-4)


if __name__ == "__main__":
    unittest.main()
