#!/usr/bin/python3
"""Trains the small V-MoE that vmoe ships as its bundled model, on Fashion-MNIST, on CPU.

    /usr/bin/python3 scripts/train_fashion_mnist.py --out models/fashion-mnist

Writes into --out: config.json (vmoe field names), weights.npz (Flax parameter names
without "params/", float32, vmoe layouts), samples.npz (256 test images, their float32
NHWC inputs, labels and PyTorch golden logits) and eval.json (accuracies per capacity
factor and BPR setting on the full test set, training log).

Needs Debian's python3-torch and python3-numpy, and dataset-fashion-mnist
(/usr/share/datasets/fashion-mnist). Deterministic for a given --seed and --threads.
"""

import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import vmoe_torch as vt  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(data_dir):
    def p(name):
        return os.path.join(data_dir, name)
    return (read_idx(p("train-images-idx3-ubyte.gz")), read_idx(p("train-labels-idx1-ubyte.gz")),
            read_idx(p("t10k-images-idx3-ubyte.gz")), read_idx(p("t10k-labels-idx1-ubyte.gz")))


def augment(x, gen, pad):
    """Random horizontal flip + random crop with `pad` pixels of background padding.
    x: (B, 28, 28, 1) float32 in [-1, 1]; background is -1 (pixel value 0)."""
    B, H, W, C = x.shape
    flip = torch.rand(B, generator=gen) < 0.5
    x = torch.where(flip.view(B, 1, 1, 1), x.flip(2), x)
    if pad > 0:
        xp = F.pad(x.permute(0, 3, 1, 2), (pad, pad, pad, pad), value=-1.0).permute(0, 2, 3, 1)
        dy = torch.randint(0, 2 * pad + 1, (B,), generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (B,), generator=gen)
        rows = (dy.view(B, 1) + torch.arange(H).view(1, H))           # (B,H)
        cols = (dx.view(B, 1) + torch.arange(W).view(1, W))           # (B,W)
        bidx = torch.arange(B).view(B, 1, 1)
        x = xp[bidx, rows.view(B, H, 1), cols.view(B, 1, W)]
    return x.contiguous()


def lr_at(step, total, warmup, peak, final_frac=0.0):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "fashion-mnist"))
    ap.add_argument("--data", default=DATA_DIR)
    ap.add_argument("--epochs", type=float, default=0,
                    help="length of the LR schedule in epochs (may be fractional); 0: size it "
                         "to the time budget from the speed of the first --probe-steps steps "
                         "(the run prints the number; pass it back for an exact rerun)")
    ap.add_argument("--time-budget", type=float, default=26 * 60,
                    help="training seconds: sizes --epochs 0, and training stops after this "
                         "many seconds in any case (the best checkpoint so far is kept)")
    ap.add_argument("--probe-steps", type=int, default=40)
    ap.add_argument("--budget-margin", type=float, default=0.92,
                    help="with --epochs 0, plan for this fraction of the time budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 was 1.5-4x faster than 2 on a shared 2-core machine)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=0.5)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--crop-pad", type=int, default=1)
    ap.add_argument("--val", type=int, default=5000,
                    help="training images held out for checkpoint selection (0: none, the "
                         "final weights are kept)")
    ap.add_argument("--evals-per-epoch", type=int, default=1)
    ap.add_argument("--hidden-size", type=int, default=64)
    ap.add_argument("--num-layers", type=int, default=4)
    ap.add_argument("--mlp-dim", type=int, default=128)
    ap.add_argument("--num-heads", type=int, default=4)
    ap.add_argument("--patch-size", type=int, default=7)
    ap.add_argument("--num-experts", type=int, default=8)
    ap.add_argument("--max-steps", type=int, default=0, help="debug: stop after N steps")
    ap.add_argument("--num-samples", type=int, default=256)
    ap.add_argument("--sweep", default="2.0,1.05,0.5,0.25,0.1",
                    help="capacity factors evaluated on the full test set with BPR off and "
                         "on ('' for none; 1.05 with BPR off is always evaluated)")
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.RandomState(args.seed)
    assert args.batch_size % 8 == 0, "batch size must be a multiple of 8 (one group = 8 images)"

    cfg = vt.make_config(hidden_size=args.hidden_size, num_layers=args.num_layers,
                         mlp_dim=args.mlp_dim, num_heads=args.num_heads,
                         patch_size=args.patch_size, num_experts=args.num_experts)
    tr_x_u8, tr_y, te_x_u8, te_y = load_fashion_mnist(args.data)
    tr_x = vt.preprocess_uint8(tr_x_u8)
    te_x = vt.preprocess_uint8(te_x_u8)
    tr_y = tr_y.astype(np.int64)
    te_y = te_y.astype(np.int64)
    perm = rng.permutation(len(tr_x))
    val_idx, fit_idx = perm[:args.val], perm[args.val:]
    fit_x, fit_y = torch.from_numpy(tr_x[fit_idx]), torch.from_numpy(tr_y[fit_idx])
    val_x, val_y = tr_x[val_idx], tr_y[val_idx]

    params = vt.init_params(cfg, gen)
    for v in params.values():
        v.requires_grad_(True)
    decay = [v for k, v in params.items() if k.endswith("kernel")]
    no_decay = [v for k, v in params.items() if not k.endswith("kernel")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    n_fit = len(fit_x)
    steps_per_epoch = n_fit // args.batch_size
    auto_epochs = args.epochs <= 0
    # With --epochs 0 the schedule length is a placeholder until the probe steps are timed.
    total_steps = int(round(args.epochs * steps_per_epoch)) if not auto_epochs else 10 ** 9
    warmup = int(round(args.warmup_epochs * steps_per_epoch))
    eval_every = max(1, steps_per_epoch // args.evals_per_epoch)
    n_params = sum(v.numel() for v in params.values())
    print(f"model: D={cfg['hidden_size']} L={cfg['transformer']['num_layers']} "
          f"M={cfg['transformer']['mlp_dim']} H={cfg['transformer']['num_heads']} "
          f"p={cfg['patch_size']} E={cfg['encoder']['moe']['num_experts']} "
          f"moe layers={cfg['encoder']['moe']['layers']} params={n_params}", flush=True)
    print(f"train {n_fit} / val {len(val_x)} / test {len(te_x)}; {steps_per_epoch} steps/epoch, "
          f"{total_steps} steps, budget {args.time_budget:.0f}s", flush=True)

    def snapshot():
        return {k: v.detach().clone() for k, v in params.items()}

    best = (-1.0, None, 0)
    log = []
    step = 0
    t_train = time.time()
    stopped = "schedule done"
    order = torch.from_numpy(rng.permutation(n_fit))
    pos_in_epoch = 0
    running = []
    while step < total_steps:
        if pos_in_epoch + args.batch_size > n_fit:
            order = torch.from_numpy(rng.permutation(n_fit))
            pos_in_epoch = 0
        idx = order[pos_in_epoch:pos_in_epoch + args.batch_size]
        pos_in_epoch += args.batch_size
        xb = augment(fit_x[idx], gen, args.crop_pad)
        yb = fit_y[idx]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total_steps, warmup, args.lr)
        logits, info = vt.forward(params, xb, cfg, train=True, generator=gen,
                                  exact_layernorm=False)
        loss = F.cross_entropy(logits, yb, label_smoothing=args.label_smoothing)
        total = loss + info["aux_loss"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        step += 1
        if auto_epochs and step == 10:
            t_probe = time.time()  # the first steps are slower (allocation); skip them
        if auto_epochs and step == args.probe_steps:
            per_step = (time.time() - t_probe) / (step - 10)
            # Validation passes cost about 5000/128/3 steps' worth each epoch; count them.
            per_step *= 1.0 + (len(val_x) / args.batch_size / 3.0) / steps_per_epoch \
                * args.evals_per_epoch
            total_steps = int(args.time_budget * args.budget_margin / per_step)
            total_steps = max(total_steps, warmup + args.probe_steps)
            args.epochs = round(total_steps / steps_per_epoch, 3)
            total_steps = int(round(args.epochs * steps_per_epoch))
            print(f"probe: {per_step:.3f}s/step -> --epochs {args.epochs} "
                  f"({total_steps} steps)", flush=True)
        running.append((float(loss), float(info["aux_loss"]),
                        float((logits.argmax(-1) == yb).float().mean())))
        elapsed = time.time() - t_train
        last = step == total_steps
        out_of_time = elapsed > args.time_budget
        if step % eval_every == 0 or last or out_of_time or step == args.max_steps:
            r = np.mean(running, axis=0)
            running = []
            entry = {"step": step, "epoch": round(step / steps_per_epoch, 3),
                     "time_s": round(elapsed, 1), "train_loss": round(float(r[0]), 4),
                     "aux_loss": round(float(r[1]), 5), "train_acc": round(float(r[2]), 4)}
            with torch.no_grad():
                params_eval = {k: v.detach() for k, v in params.items()}
                if len(val_x):
                    acc, _, _ = vt.evaluate(params_eval, val_x, val_y, cfg)
                    entry["val_acc"] = round(acc, 4)
                    if acc > best[0]:
                        best = (acc, snapshot(), step)
                else:
                    best = (0.0, snapshot(), step)
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if out_of_time:
            stopped = f"time budget reached at step {step}/{total_steps}"
            break
        if args.max_steps and step >= args.max_steps:
            stopped = f"max steps {args.max_steps}"
            break
    train_time = time.time() - t_train
    print(f"training: {stopped}; {train_time:.0f}s; best val {best[0]:.4f} at step {best[2]}",
          flush=True)

    params = best[1]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    vt.save_npz(params, os.path.join(args.out, "weights.npz"))
    params = vt.load_npz(os.path.join(args.out, "weights.npz"))  # evaluate what was saved

    # Samples and golden logits: the first num_samples test images, batches of 8 images
    # (one routing group each), fp32, eval semantics.
    ns = args.num_samples
    s_u8 = te_x_u8[:ns]
    s_x = vt.preprocess_uint8(s_u8)

    def golden(cf, bpr):
        out = []
        with torch.no_grad():
            for i in range(0, ns, 8):
                out.append(vt.forward(params, torch.from_numpy(s_x[i:i + 8]), cfg, cf, bpr)[0])
        return torch.cat(out).numpy().astype(np.float32)

    np.savez(os.path.join(args.out, "samples.npz"),
             images=s_u8.astype(np.uint8), labels=te_y[:ns].astype(np.int32),
             inputs=s_x.astype(np.float32),
             logits=golden(None, None),
             logits_cf0_5_bpr=golden(0.5, True),
             logits_cf0_5_vanilla=golden(0.5, False))

    # Full test set across capacity factors, BPR off / on.
    results = []
    t_eval = time.time()
    cfs = [float(c) for c in args.sweep.split(",") if c.strip()]
    points = [(1.05, False)] + [(cf, bpr) for cf in cfs for bpr in (False, True)
                                if (cf, bpr) != (1.05, False)]
    for cf, bpr in points:
        acc, _, st = vt.evaluate(params, te_x, te_y, cfg, capacity_factor=cf,
                                 batch_priority=bpr)
        kept = sum(s["kept"] for s in st)
        assign = sum(s["assignments"] for s in st)
        res = {"capacity_factor": cf, "bpr": bpr, "accuracy": round(acc, 4),
               "capacity": st[0]["capacity"],
               "assignments_kept": round(kept / assign, 4),
               "per_layer_kept": [round(s["kept"] / s["assignments"], 4) for s in st]}
        results.append(res)
        print(json.dumps(res), flush=True)
    eval_time = time.time() - t_eval
    default = results[0]
    results.sort(key=lambda r: (-r["capacity_factor"], r["bpr"]))
    summary = {
        "test_accuracy": default["accuracy"],
        "test_images": int(len(te_x)),
        "val_accuracy": round(best[0], 4) if len(val_x) else None,
        "best_step": best[2],
        "steps": step,
        "total_steps": total_steps,
        "stopped": stopped,
        "train_time_s": round(train_time, 1),
        "eval_time_s": round(eval_time, 1),
        "wall_time_s": round(time.time() - t_start, 1),
        "threads": args.threads,
        "torch": torch.__version__,
        "args": vars(args),
        "sweep": results,
        "log": log,
    }
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(f"test accuracy (cf 1.05, vanilla): {default['accuracy']:.4f}; "
          f"wall {summary['wall_time_s']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
