"""A faithful PyTorch implementation of V-MoE inference (and its training-time router).

This module mirrors google-research/vmoe (see docs/vmoe-reference.md, sections 1-7) with
the parameters kept in vmoe's own layout and Flax names (without the leading "params/"):

    embedding/kernel (p,p,C,D) HWIO, embedding/bias (D,), cls (1,1,D),
    Encoder/posembed_input/pos_embedding (1,T,D),
    Encoder/encoderblock_{i}/LayerNorm_0/{scale,bias},
    Encoder/encoderblock_{i}/SelfAttention/{query,key,value}/{kernel (D,H,Dh), bias (H,Dh)},
    Encoder/encoderblock_{i}/SelfAttention/out/{kernel (H,Dh,D), bias (D,)},
    Encoder/encoderblock_{i}/LayerNorm_1/{scale,bias},
    Encoder/encoderblock_{i}/Mlp/Dense_{0,1}/{kernel,bias}            (dense blocks)
    Encoder/encoderblock_{i}/Moe/Router/dense/kernel (D,E)             (MoE blocks)
    Encoder/encoderblock_{i}/Moe/Mlp/Dense_0/{kernel (E,D,M), bias (E,M)}
    Encoder/encoderblock_{i}/Moe/Mlp/Dense_1/{kernel (E,M,D), bias (E,D)}
    Encoder/encoder_norm/{scale,bias}, head/{kernel (D,classes), bias}

Kernels are (in, out): y = x @ W + b. Images are float32 NHWC in [-1, 1].

Semantics implemented (all per vmoe):
  * LayerNorm eps 1e-6, fast variance var = max(0, E[x^2] - E[x]^2),
    y = (x - mu) * (rsqrt(var + eps) * scale) + bias.
  * tanh-approximate GELU; q scaled by 1/sqrt(Dh) before q k^T; softmax in float32.
  * Router: logits = x @ W (no bias), softmax over all E experts, top-k with ties to the
    lower expert index, no renormalisation. Training adds N(0,1) * noise_std / E to the
    logits before the softmax.
  * Capacity C = roundup4(ceil(S*k*cf/E)) evaluated in double.
  * Slot assignment per group in k-major order (all first choices, then all second
    choices, ...), in token order (vanilla) or in a stable sort by descending top-1 gate
    (BPR, same permutation for every round); per-expert counters keep counting past C,
    assignments with position >= C are dropped and contribute 0.
  * bfloat16 dispatcher: expert inputs rounded to bf16 (RNE), expert outputs rounded to
    bf16, the gate-weighted combine is float32.
  * Groups are consecutive chunks of group_size tokens of the row-major (B, T) flattening.

Dispatch and combine are implemented with index ops (scatter into an (E, G*C, D) buffer,
batched expert matmuls, gather back), not one-hot einsums.

The module needs only torch and numpy. Use it from the repository root with
`sys.path.insert(0, "python")` or with PYTHONPATH=python.
"""

import json
import math

import numpy as np
import torch
import torch.nn.functional as F

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

LN_EPS = 1e-6


# ----------------------------------------------------------------------------------------
# Config helpers
# ----------------------------------------------------------------------------------------

def make_config(hidden_size=64, num_layers=4, mlp_dim=128, num_heads=4, patch_size=4,
                image_size=(28, 28), channels=1, num_experts=8, num_selected_experts=2,
                capacity_factor=1.05, batch_priority=False, moe_every=2,
                group_images=8, num_classes=10, class_names=None,
                name="vmoe-fashion-mnist"):
    """Returns a vmoe-style config dict (field names and nesting as in vmoe configs)."""
    grid_h, grid_w = image_size[0] // patch_size, image_size[1] // patch_size
    tokens = grid_h * grid_w + 1  # + cls token
    return {
        "name": name,
        "image_size": list(image_size),
        "channels": channels,
        "patch_size": patch_size,
        "hidden_size": hidden_size,
        "classifier": "token",
        "representation_size": None,
        "num_classes": num_classes,
        "class_names": list(class_names or FASHION_MNIST_CLASSES),
        "transformer": {"num_layers": num_layers, "mlp_dim": mlp_dim,
                        "num_heads": num_heads},
        "encoder": {"moe": {
            "layers": list(range(moe_every - 1, num_layers, moe_every)),
            "num_experts": num_experts,
            "group_size": group_images * tokens,
            "router": {
                "num_selected_experts": num_selected_experts,
                "noise_std": 1.0,
                "dispatcher": {"capacity_factor": capacity_factor,
                               "batch_priority": batch_priority,
                               "bfloat16": True},
            },
        }},
    }


def load_config(path):
    with open(path) as f:
        return json.load(f)


def encoder_cfg(cfg):
    """num_layers, mlp_dim and num_heads: under "encoder" (vmoe's layout, what
    vmoe-compile --emit=config writes) or "transformer" (big_vision's)."""
    enc = dict(cfg.get("transformer") or {})
    enc.update({k: v for k, v in (cfg.get("encoder") or {}).items() if k != "moe"})
    return enc


def tokens_per_image(cfg):
    p = cfg["patch_size"]
    h, w = cfg["image_size"]
    return (h // p) * (w // p) + (1 if cfg["classifier"] == "token" else 0)


# ----------------------------------------------------------------------------------------
# Weights I/O
# ----------------------------------------------------------------------------------------

def load_npz(path, dtype=torch.float32):
    """Reads weights.npz (Flax names without 'params/') into a dict of torch tensors."""
    with np.load(path) as z:
        return {k: torch.from_numpy(np.array(z[k])).to(dtype) for k in z.files}


def save_npz(params, path):
    """Writes a dict of tensors as float32 arrays with np.savez (uncompressed)."""
    arrays = {k: np.ascontiguousarray(v.detach().cpu().numpy().astype(np.float32))
              for k, v in params.items()}
    np.savez(path, **arrays)


def param_shapes(cfg):
    """The Flax parameter tree (flattened names -> shapes) of the model described by cfg."""
    D = cfg["hidden_size"]
    M = encoder_cfg(cfg)["mlp_dim"]
    H = encoder_cfg(cfg)["num_heads"]
    L = encoder_cfg(cfg)["num_layers"]
    Dh = D // H
    p = cfg["patch_size"]
    C = cfg["channels"]
    T = tokens_per_image(cfg)
    moe = cfg["encoder"]["moe"]
    E = moe["num_experts"]
    nc = cfg["num_classes"]
    s = {"embedding/kernel": (p, p, C, D), "embedding/bias": (D,)}
    if cfg["classifier"] == "token":
        s["cls"] = (1, 1, D)
    s["Encoder/posembed_input/pos_embedding"] = (1, T, D)
    for i in range(L):
        b = f"Encoder/encoderblock_{i}/"
        s[b + "LayerNorm_0/scale"] = (D,)
        s[b + "LayerNorm_0/bias"] = (D,)
        for n in ("query", "key", "value"):
            s[b + f"SelfAttention/{n}/kernel"] = (D, H, Dh)
            s[b + f"SelfAttention/{n}/bias"] = (H, Dh)
        s[b + "SelfAttention/out/kernel"] = (H, Dh, D)
        s[b + "SelfAttention/out/bias"] = (D,)
        s[b + "LayerNorm_1/scale"] = (D,)
        s[b + "LayerNorm_1/bias"] = (D,)
        if i in moe["layers"]:
            s[b + "Moe/Router/dense/kernel"] = (D, E)
            s[b + "Moe/Mlp/Dense_0/kernel"] = (E, D, M)
            s[b + "Moe/Mlp/Dense_0/bias"] = (E, M)
            s[b + "Moe/Mlp/Dense_1/kernel"] = (E, M, D)
            s[b + "Moe/Mlp/Dense_1/bias"] = (E, D)
        else:
            s[b + "Mlp/Dense_0/kernel"] = (D, M)
            s[b + "Mlp/Dense_0/bias"] = (M,)
            s[b + "Mlp/Dense_1/kernel"] = (M, D)
            s[b + "Mlp/Dense_1/bias"] = (D,)
    s["Encoder/encoder_norm/scale"] = (D,)
    s["Encoder/encoder_norm/bias"] = (D,)
    s["head/kernel"] = (D, nc)
    s["head/bias"] = (nc,)
    return s


def init_params(cfg, generator=None):
    """Initialises parameters the way vmoe / vit_jax do (xavier-uniform dense kernels,
    lecun-normal patch embedding and router, N(0, 0.02) position embeddings, zero head)."""
    g = generator

    def normal(shape, std):
        return torch.randn(shape, generator=g) * std

    def xavier_uniform(shape, fan_in, fan_out):
        a = math.sqrt(6.0 / (fan_in + fan_out))
        return (torch.rand(shape, generator=g) * 2 - 1) * a

    D = cfg["hidden_size"]
    M = encoder_cfg(cfg)["mlp_dim"]
    out = {}
    for name, shape in param_shapes(cfg).items():
        last = name.rsplit("/", 1)[-1]
        if name == "embedding/kernel":
            fan_in = shape[0] * shape[1] * shape[2]
            v = normal(shape, 1.0 / math.sqrt(fan_in))
        elif name == "cls":
            v = torch.zeros(shape)
        elif name.endswith("pos_embedding"):
            v = normal(shape, 0.02)
        elif last == "scale":
            v = torch.ones(shape)
        elif name.startswith("head/"):
            v = torch.zeros(shape)
        elif name.endswith("Router/dense/kernel"):
            v = normal(shape, 1.0 / math.sqrt(D))
        elif "SelfAttention" in name and last == "kernel":
            v = xavier_uniform(shape, D, D)
        elif "SelfAttention" in name:
            v = torch.zeros(shape)
        elif "Dense_0/kernel" in name:
            v = xavier_uniform(shape, D, M)
        elif "Dense_1/kernel" in name:
            v = xavier_uniform(shape, M, D)
        elif "Mlp/Dense" in name and last == "bias":
            v = normal(shape, 1e-6)
        elif last == "bias":
            v = torch.zeros(shape)
        else:
            raise ValueError(f"no initialiser for {name}")
        out[name] = v.float().contiguous()
    return out


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------

def compute_capacity(num_tokens, num_experts, capacity_factor, multiple_of=4):
    """vmoe.moe.compute_capacity with ceil and multiple_of=4, in double (Python float)."""
    v = num_tokens * float(capacity_factor) / num_experts
    cap = int(math.ceil(v))
    if cap < 1:
        raise ValueError(f"capacity must be >= 1, got {cap} (from {v})")
    if multiple_of and multiple_of > 0:
        cap += (-cap) % multiple_of
    return cap


def layer_norm(x, scale, bias, eps=LN_EPS):
    """Flax LayerNorm with the fast variance form."""
    mu = x.mean(-1, keepdim=True)
    mu2 = (x * x).mean(-1, keepdim=True)
    var = torch.clamp(mu2 - mu * mu, min=0.0)
    return (x - mu) * (torch.rsqrt(var + eps) * scale) + bias


def layer_norm_fast(x, scale, bias, eps=LN_EPS):
    """torch's fused LayerNorm (two-pass variance). Differs from layer_norm() by float
    rounding only; used for training speed (forward(..., exact_layernorm=False))."""
    return F.layer_norm(x, x.shape[-1:], scale, bias, eps)


def gelu(x):
    """jax.nn.gelu(approximate=True): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return F.gelu(x, approximate="tanh")


def bf16_round(x):
    """Round to bfloat16 (round to nearest even) and back to the input dtype."""
    return x.to(torch.bfloat16).to(x.dtype)


def patch_embed(params, images, cfg):
    """Conv(p x p, stride p, VALID) as patch extraction + matmul. images: (B,H,W,C)."""
    p = cfg["patch_size"]
    B, Hh, Ww, C = images.shape
    gh, gw = Hh // p, Ww // p
    x = images[:, :gh * p, :gw * p, :]
    x = x.reshape(B, gh, p, gw, p, C).permute(0, 1, 3, 2, 4, 5).reshape(B, gh * gw, p * p * C)
    k = params["embedding/kernel"].reshape(p * p * C, -1)
    return x @ k + params["embedding/bias"]


def self_attention(params, prefix, x, num_heads):
    B, T, D = x.shape
    H = num_heads
    Dh = D // H

    def proj(n):
        k = params[f"{prefix}SelfAttention/{n}/kernel"].reshape(D, H * Dh)
        b = params[f"{prefix}SelfAttention/{n}/bias"].reshape(H * Dh)
        return (x @ k + b).reshape(B, T, H, Dh).transpose(1, 2)  # (B,H,T,Dh)

    q = proj("query") / math.sqrt(Dh)
    k = proj("key")
    v = proj("value")
    attn = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
    o = (attn @ v).transpose(1, 2).reshape(B, T, H * Dh)
    wo = params[f"{prefix}SelfAttention/out/kernel"].reshape(H * Dh, D)
    return o @ wo + params[f"{prefix}SelfAttention/out/bias"]


def mlp(params, prefix, x):
    h = gelu(x @ params[prefix + "Dense_0/kernel"] + params[prefix + "Dense_0/bias"])
    return h @ params[prefix + "Dense_1/kernel"] + params[prefix + "Dense_1/bias"]


# ----------------------------------------------------------------------------------------
# Routing
# ----------------------------------------------------------------------------------------

def top_k_lower_index(gates, k):
    """Top-k over the last axis, descending, ties broken towards the lower index
    (the jax.lax.top_k contract). Returns (values, indices), each (..., k)."""
    g = gates.detach().clone()
    idx = []
    for _ in range(k):
        i = torch.argmax(g, dim=-1, keepdim=True)  # first maximal index
        idx.append(i)
        g.scatter_(-1, i, float("-inf"))
    idx = torch.cat(idx, dim=-1)
    return gates.gather(-1, idx), idx


def assign_slots(top_gates, top_idx, num_experts, batch_priority):
    """Slot positions for every (token, choice) of every group.

    top_gates, top_idx: (G, S, K). Returns pos (G, S, K) int64: the position of each
    assignment in its expert's buffer, counting in k-major order over the token order
    (vanilla) or the BPR order (stable sort by descending top-1 gate). Counters keep
    counting past the capacity, so pos >= C marks a dropped assignment.
    """
    G, S, K = top_idx.shape
    if batch_priority:
        # Stable sort by -top1 gate: equal priorities keep token order.
        _, order = torch.sort(-top_gates[..., 0].detach(), dim=1, stable=True)
    else:
        order = torch.arange(S, device=top_idx.device).expand(G, S)
    order_k = order.unsqueeze(-1).expand(G, S, K)
    ex_perm = top_idx.gather(1, order_k)                 # (G, S, K) in priority order
    flat = ex_perm.transpose(1, 2).reshape(G, K * S)     # k-major
    onehot = F.one_hot(flat, num_experts)                # (G, K*S, E)
    pos_flat = (onehot.cumsum(dim=1) - 1).gather(2, flat.unsqueeze(-1)).squeeze(-1)
    pos_perm = pos_flat.reshape(G, K, S).transpose(1, 2)  # (G, S, K) in priority order
    pos = torch.empty_like(pos_perm).scatter_(1, order_k, pos_perm)
    return pos


def combine_weights(gates, num_selected_experts, capacity, batch_priority):
    """Dense vmoe combine tensor (G, S, E, C) for gates (G, S, E): combine[g,s,e,c] is
    the gate of token s for expert e if that assignment landed in slot c, else 0. Meant for
    tests (the model itself never materialises it)."""
    G, S, E = gates.shape
    w, ex = top_k_lower_index(gates, num_selected_experts)
    pos = assign_slots(w, ex, E, batch_priority)
    kept = pos < capacity
    out = gates.new_zeros(G, S, E, capacity)
    gi, si, ki = kept.nonzero(as_tuple=True)
    out[gi, si, ex[gi, si, ki], pos[gi, si, ki]] = w[gi, si, ki]
    return out


def importance_loss(gates):
    """(G,S,E) clean softmax gates -> (G,) CV^2 of the per-expert importance."""
    imp = gates.sum(dim=1)
    return imp.var(dim=-1, unbiased=False) / imp.mean(dim=-1) ** 2


def load_loss(logits, logits_noisy, noise_std, k):
    """(G,S,E) clean and noisy logits -> (G,) vmoe load loss (CV^2 of mean_s p)."""
    _, idx = top_k_lower_index(logits_noisy, k)
    thr = logits_noisy.gather(-1, idx[..., -1:])  # K-th largest noisy logit
    z = (thr - logits) / noise_std
    p = 1.0 - 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    p_mean = p.mean(dim=1)
    return p_mean.var(dim=-1, unbiased=False) / p_mean.mean(dim=-1) ** 2


def gshard_loss(gates):
    E = gates.shape[-1]
    mean_gates = gates.mean(dim=1)
    top1 = F.one_hot(gates.argmax(dim=-1), E).to(gates.dtype).mean(dim=1)
    return (mean_gates * top1).mean(dim=-1) * E ** 2


def moe_mlp(params, prefix, y, cfg, capacity_factor=None, batch_priority=None,
            group_size=None, num_selected_experts=None, train=False, generator=None,
            bfloat16=None):
    """vmoe MlpMoeBlock on y (B, T, D). Returns (out (B,T,D), stats dict, aux_loss (G,))."""
    moe = cfg["encoder"]["moe"]
    router = moe["router"]
    disp = router["dispatcher"]
    E = moe["num_experts"]
    K = num_selected_experts or router["num_selected_experts"]
    S = group_size or moe["group_size"]
    cf = disp["capacity_factor"] if capacity_factor is None else capacity_factor
    bpr = disp.get("batch_priority", False) if batch_priority is None else batch_priority
    use_bf16 = disp.get("bfloat16", False) if bfloat16 is None else bfloat16
    B, T, D = y.shape
    if (B * T) % S:
        raise ValueError(f"B*T = {B * T} is not a multiple of group_size {S}")
    G = B * T // S
    yg = y.reshape(G, S, D)

    logits = yg @ params[prefix + "Router/dense/kernel"]     # (G,S,E), no bias
    gates_clean = torch.softmax(logits, dim=-1)
    noise_std = router.get("noise_std", 1.0)
    if train and noise_std > 0:
        sigma = noise_std / E
        noise = torch.randn(logits.shape, generator=generator, dtype=logits.dtype)
        logits_noisy = logits + sigma * noise
        gates = torch.softmax(logits_noisy, dim=-1)
        aux = (0.005 * importance_loss(gates_clean)
               + 0.005 * load_loss(logits, logits_noisy, sigma, K))
    else:
        gates = gates_clean
        aux = 0.005 * importance_loss(gates_clean)

    C = compute_capacity(S * K, E, cf)
    w, ex = top_k_lower_index(gates, K)                       # (G,S,K)
    pos = assign_slots(w, ex, E, bpr)
    kept = pos < C                                            # (G,S,K)

    # Dispatch: scatter kept assignments into the (G, E, C) slot buffer.
    g_idx = torch.arange(G).view(G, 1, 1).expand(G, S, K)
    tok = (g_idx * S + torch.arange(S).view(1, S, 1)).expand(G, S, K)
    slot = (g_idx * E + ex) * C + pos
    slot_k = slot[kept]
    tok_k = tok[kept]
    w_k = w[kept]
    x_flat = yg.reshape(G * S, D)
    if use_bf16:
        x_flat = bf16_round(x_flat)
    buf = x_flat.new_zeros(G * E * C, D).index_put((slot_k,), x_flat[tok_k])
    buf = buf.view(G, E, C, D).transpose(0, 1).reshape(E, G * C, D)

    # Experts: a batched MLP over the stacked expert weights.
    w0 = params[prefix + "Mlp/Dense_0/kernel"]
    b0 = params[prefix + "Mlp/Dense_0/bias"]
    w1 = params[prefix + "Mlp/Dense_1/kernel"]
    b1 = params[prefix + "Mlp/Dense_1/bias"]
    h = gelu(torch.baddbmm(b0.unsqueeze(1), buf, w0))
    ye = torch.baddbmm(b1.unsqueeze(1), h, w1)               # (E, G*C, D)
    if use_bf16:
        ye = bf16_round(ye)
    ye = ye.view(E, G, C, D).transpose(0, 1).reshape(G * E * C, D)

    # Combine: gather each kept assignment's output, weight by its (unrenormalised) gate.
    contrib = ye[slot_k] * w_k.unsqueeze(-1)
    out = x_flat.new_zeros(G * S, D).index_add(0, tok_k, contrib)

    n_assign = G * S * K
    n_kept = int(kept.sum())
    any_kept = kept.any(dim=-1)                               # (G,S)
    stats = {
        "capacity": C,
        "groups": G,
        "group_size": S,
        "assignments": n_assign,
        "kept": n_kept,
        "dropped": n_assign - n_kept,
        "tokens_fully_dropped": int((~any_kept).sum()),
        "kept_per_choice": [int(kept[..., j].sum()) for j in range(K)],
    }
    return out.reshape(B, T, D), stats, aux


# ----------------------------------------------------------------------------------------
# Whole model
# ----------------------------------------------------------------------------------------

def forward(params, images, cfg, capacity_factor=None, batch_priority=None, group_size=None,
            num_selected_experts=None, train=False, generator=None, bfloat16=None,
            exact_layernorm=True):
    """Runs the V-MoE on float32 NHWC images in [-1, 1].

    capacity_factor / batch_priority / group_size / num_selected_experts / bfloat16 default
    to the config's values. train=True adds router noise (eval semantics otherwise; there is
    no dropout in this model). Returns (logits (B, classes), info) where info holds
    "moe": a list of per-MoE-layer routing stats (with "layer"), and "aux_loss": the mean
    over groups of the summed auxiliary losses (a scalar tensor).
    exact_layernorm=False swaps vmoe's fast-variance LayerNorm for torch's fused one (same
    function up to float rounding, much faster to train); inference and golden logits use
    the exact form.
    """
    ln = layer_norm if exact_layernorm else layer_norm_fast
    D = cfg["hidden_size"]
    H = encoder_cfg(cfg)["num_heads"]
    L = encoder_cfg(cfg)["num_layers"]
    moe_layers = set(cfg["encoder"]["moe"]["layers"])
    x = patch_embed(params, images, cfg)
    B = x.shape[0]
    if cfg["classifier"] == "token":
        x = torch.cat([params["cls"].expand(B, 1, D), x], dim=1)
    x = x + params["Encoder/posembed_input/pos_embedding"]
    stats = []
    aux_total = None
    for i in range(L):
        p = f"Encoder/encoderblock_{i}/"
        y = ln(x, params[p + "LayerNorm_0/scale"], params[p + "LayerNorm_0/bias"])
        x = x + self_attention(params, p, y, H)
        y = ln(x, params[p + "LayerNorm_1/scale"], params[p + "LayerNorm_1/bias"])
        if i in moe_layers:
            y, st, aux = moe_mlp(params, p + "Moe/", y, cfg, capacity_factor, batch_priority,
                                 group_size, num_selected_experts, train, generator, bfloat16)
            st["layer"] = i
            stats.append(st)
            aux_total = aux if aux_total is None else aux_total + aux
        else:
            y = mlp(params, p + "Mlp/", y)
        x = x + y
    x = ln(x, params["Encoder/encoder_norm/scale"], params["Encoder/encoder_norm/bias"])
    if cfg["classifier"] in ("token", "0"):
        pooled = x[:, 0]
    elif cfg["classifier"] == "gap":
        pooled = x.mean(dim=1)
    else:
        raise ValueError(f"unsupported classifier {cfg['classifier']}")
    if cfg.get("representation_size") is not None:
        pooled = torch.tanh(pooled @ params["pre_logits/kernel"] + params["pre_logits/bias"])
    logits = pooled @ params["head/kernel"] + params["head/bias"]
    aux_loss = aux_total.mean() if aux_total is not None else logits.new_zeros(())
    return logits, {"moe": stats, "aux_loss": aux_loss}


def preprocess_uint8(images_u8):
    """vmoe value_range(-1, 1) on uint8 (N,H,W) or (N,H,W,C): x/255*2-1 in float32, NHWC."""
    x = np.asarray(images_u8)
    if x.ndim == 3:
        x = x[..., None]
    x = x.astype(np.float32)
    return (np.float32(-1.0) + np.float32(2.0) * (x / np.float32(255.0))).astype(np.float32)


def merge_stats(total, stats):
    """Accumulates per-layer routing stats of successive forward calls."""
    if total is None:
        return [dict(s) for s in stats]
    for t, s in zip(total, stats):
        for key in ("groups", "assignments", "kept", "dropped", "tokens_fully_dropped"):
            t[key] += s[key]
        t["kept_per_choice"] = [a + b for a, b in zip(t["kept_per_choice"],
                                                      s["kept_per_choice"])]
    return total


@torch.no_grad()
def evaluate(params, images, labels, cfg, capacity_factor=None, batch_priority=None,
             batch_size=1000, group_images=8):
    """Accuracy and routing stats on float32 NHWC images. batch_size must be a multiple of
    group_images; groups of group_images images are routed independently, so the result
    equals running batches of group_images images. Returns (accuracy, logits, stats)."""
    assert batch_size % group_images == 0
    n = images.shape[0]
    outs = []
    total = None
    for s in range(0, n, batch_size):
        xb = torch.as_tensor(images[s:s + batch_size])
        logits, info = forward(params, xb, cfg, capacity_factor, batch_priority)
        outs.append(logits)
        total = merge_stats(total, info["moe"])
    logits = torch.cat(outs)
    acc = float((logits.argmax(-1) == torch.as_tensor(labels).long()).float().mean())
    return acc, logits, total
