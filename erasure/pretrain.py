"""Train the mini world (from scratch, or on from a trained UNet): the text-conditional UNet, then the
oracle (see oracle.py).

Deterministic for a seed on CPU. Checkpoints every `checkpoint_every` steps so an interrupted run
resumes where it stopped.
"""
import copy
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file

from . import checkpoint, io
from .config import check_init_from
from .miniworld import build_unet, load_concepts, pack, train_scheduler, training_captions
from .oracle import blob_renders
from .progress import Progress
from .render import COLOURS, SHAPES, render_batch
from .text import MiniLMEncoder

def learning_rate(step: int, cfg: dict) -> float:
    """Linear warm-up, constant, then a cosine decay to 10% from `decay_start` to the last step."""
    if step < cfg["warmup"]:
        return cfg["lr"] * (step + 1) / cfg["warmup"]
    if step < cfg["decay_start"]:
        return cfg["lr"]
    frac = (step - cfg["decay_start"]) / max(1, cfg["steps"] - cfg["decay_start"])
    return cfg["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 32, 32, 3] -> float [N, 3, 32, 32] in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def caption_table(encoder: MiniLMEncoder, concepts: dict, none_names: list[str] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every training caption [C, names, templates, colours, L, D] and of "" [L, D]; the
    classes are SHAPES in order, then "none" (index 8, the oracle's REJECT) when none_names are given."""
    captions = training_captions(concepts, none_names)
    classes = list(SHAPES) + (["none"] if none_names else [])
    flat = [captions[c][n][t][k] for c in classes for n in range(3) for t in range(len(concepts["templates"]))
            for k in range(len(COLOURS))]
    emb = encoder.encode(flat)
    table = emb.reshape(len(classes), 3, len(concepts["templates"]), len(COLOURS), *emb.shape[1:])
    return table, encoder.encode([""])[0]


def none_renders(n: int, seed: int, kind: str) -> tuple[np.ndarray, list[str]]:
    """n images of the none class with a colour name each (for the caption): white blank canvases, black
    ones, irregular blobs in that colour (the oracle's reject shapes), or the whole canvas filled with that
    colour (jittered like a shape's). A filled or black canvas differs from every shape's image (a shape on
    white) in its mean colour, which survives the high-noise steps where the caption decides what is
    drawn; black differs most (docs/protocol.md)."""
    if kind == "blob":
        return blob_renders(n, seed)
    rng = np.random.default_rng(seed)
    names = [list(COLOURS)[rng.integers(len(COLOURS))] for _ in range(n)]
    if kind in ("blank", "black"):
        return np.full((n, 32, 32, 3), 255 if kind == "blank" else 0, dtype=np.uint8), names
    fills = [[np.clip(c + rng.integers(-25, 26), 0, 255) for c in COLOURS[name]] for name in names]
    return np.broadcast_to(np.array(fills, dtype=np.uint8)[:, None, None, :], (n, 32, 32, 3)).copy(), names


def caption_dropout(cfg: dict, n_classes: int) -> torch.Tensor:
    """[n_classes] share of empty captions per class: caption_dropout for the shapes, none_caption_dropout
    (when set) for the none class, the last class when there is one."""
    dropout = torch.full((n_classes,), float(cfg["caption_dropout"]))
    if cfg["none_names"] and cfg["none_caption_dropout"] is not None:
        dropout[-1] = cfg["none_caption_dropout"]
    return dropout


def initial_unet(cfg: dict) -> torch.nn.Module:
    """The UNet training starts from: fresh weights from the seed, or the weights of init_from."""
    check_init_from(cfg["init_from"])   # again: --params skips the config's checks
    unet = build_unet(seed=cfg["seed"])
    if cfg["init_from"]:
        unet.load_state_dict(load_file(cfg["init_from"]))
    return unet.train()


def pool(n: int, seed: int, cfg: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """n training-like images: uint8 [n, 32, 32, 3], class index (the none class: len(SHAPES)) and colour
    name. A share none_fraction of them is the none class when cfg (pretrain.unet) has none_names."""
    n_none = round(n * cfg["none_fraction"]) if cfg["none_names"] else 0
    images, labels, colour_names = render_batch(n - n_none, seed=seed)
    if n_none:
        extra, extra_colours = none_renders(n_none, seed + 1, cfg["none_images"])
        images = np.concatenate([images, extra])
        labels = np.concatenate([labels, np.full(n_none, len(SHAPES))])
        colour_names = list(colour_names) + extra_colours
    return images, labels, colour_names


def training_images(cfg: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The UNet's pool: pixels [N, 3, 32, 32], class index and colour index."""
    images, labels, colour_names = pool(cfg["pool_size"], cfg["seed"], cfg)
    colour_idx = torch.tensor([list(COLOURS).index(c) for c in colour_names])
    return images_to_tensor(images), torch.from_numpy(labels), colour_idx


def train_unet(encoder: MiniLMEncoder, out_dir: str | Path, cfg: dict, progress: Callable[[str], None] = print) -> dict:
    """Noise-prediction training with EMA and caption dropout. Writes unet.safetensors (the EMA weights).
    cfg: the config's pretrain.unet (schema defaults filled)."""
    unet = initial_unet(cfg)   # first: a bad init_from stops the run before any work
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    concepts = load_concepts()
    table, null = caption_table(encoder, concepts, cfg["none_names"])
    n_templates = table.shape[2]
    pixels, labels, colour_idx = training_images(cfg)
    dropout = caption_dropout(cfg, table.shape[0])

    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg["lr"], weight_decay=0.0)
    scheduler = train_scheduler()
    gen = torch.Generator().manual_seed(cfg["seed"])
    start, elapsed, losses = 0, 0.0, []

    ckpt = out_dir / "unet_checkpoint.safetensors"
    run_owner = checkpoint.owner(cfg, cfg["init_from"])
    start, extra, meta = checkpoint.resume(ckpt, list(unet.parameters()), opt, gen, run_owner, progress)
    if start:  # resume: weights, EMA, optimizer moments and RNG come back exactly
        ema.load_state_dict({k[4:]: v for k, v in extra.items() if k.startswith("ema.")})
        elapsed, losses = float(meta["elapsed"]), extra["losses"].tolist()
        progress(f"resuming UNet training at step {start}")

    t0 = time.time() - elapsed
    bar = Progress(cfg["steps"], "unet", every=cfg["log_every"], initial=start, unit="steps")
    for step in range(start, cfg["steps"]):
        idx = torch.randint(len(pixels), (cfg["batch_size"],), generator=gen)
        name = torch.randint(3, (len(idx),), generator=gen)
        template = torch.randint(n_templates, (len(idx),), generator=gen)
        cond = table[labels[idx], name, template, colour_idx[idx]]
        drop = torch.rand(len(idx), generator=gen) < dropout[labels[idx]]
        cond[drop] = null

        x0 = pack(pixels[idx])
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(scheduler.config.num_train_timesteps, (len(idx),), generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        loss = torch.nn.functional.mse_loss(unet(xt, t, cond).sample, noise)

        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(cfg["ema_decay"], (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        losses.append(loss.item())

        bar.update(loss=float(np.mean(losses[-cfg["log_every"]:])))
        if (step + 1) % cfg["checkpoint_every"] == 0 and step + 1 < cfg["steps"]:
            ema_state = {f"ema.{k}": v.contiguous() for k, v in ema.state_dict().items()}
            checkpoint.save(ckpt, list(unet.parameters()), opt, gen, step + 1,
                            {**ema_state, "losses": torch.tensor(losses, dtype=torch.float64)},
                            {"elapsed": str(time.time() - t0), "owner": run_owner})

    bar.close()
    io.save_safetensors({k: v.contiguous() for k, v in ema.state_dict().items()}, out_dir / "unet.safetensors")
    ckpt.unlink(missing_ok=True)
    return dict(config=cfg, final_loss=float(np.mean(losses[-200:])), wall_time_s=round(time.time() - t0, 1),
                loss_curve=[round(float(np.mean(losses[i:i + 100])), 5) for i in range(0, len(losses), 100)])


def degraded_renders(unet: torch.nn.Module, encoder: MiniLMEncoder, n: int, seed: int, cfg: dict,
                     unet_cfg: dict, batch: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Renders pushed through the model: noised to a random timestep in [t_min, t_max] and denoised
    back under their own caption (SDEdit). Drawn like the UNet's pool (unet_cfg: pretrain.unet), so a
    model with a none class contributes its own none images, labelled REJECT: the oracle then knows
    what this model draws for the anchor. Returns uint8 images [n, 32, 32, 3] and labels [n]."""
    from .miniworld import sample_scheduler, unpack
    from .sampling import round_trip
    from .world import to_uint8

    concepts = load_concepts()
    table, null = caption_table(encoder, concepts, unet_cfg["none_names"])
    images, labels, colour_names = pool(n, seed, unet_cfg)
    if unet_cfg["none_names"]:
        # The pool lists its none images last and a batch shares one noise level: shuffle, so they get
        # as many noise levels as the shapes. (Without a none class the order stays as the committed
        # oracle was trained.)
        order = np.random.default_rng(seed + 7).permutation(n)
        images, labels, colour_names = images[order], labels[order], [colour_names[i] for i in order]
    colour_idx = [list(COLOURS).index(c) for c in colour_names]
    rng = np.random.default_rng(seed)
    scheduler = sample_scheduler()
    out = np.empty_like(images)
    bar = Progress(n, "degraded renders", every=10 * batch, unit="images")
    for i in range(0, n, batch):
        sl = slice(i, i + batch)
        cond = torch.stack([table[labels[j], rng.integers(3), rng.integers(table.shape[2]), colour_idx[j]]
                            for j in range(i, min(i + batch, n))])
        t_start = int(rng.integers(cfg["t_min"], cfg["t_max"] + 1))
        x0 = pack(images_to_tensor(images[sl]))
        z = round_trip(unet, scheduler, x0, cond, null, t_start, seed=seed + i, steps=cfg["round_trip_steps"])
        out[sl] = to_uint8(unpack(z))
        bar.update(min(batch, n - i))
    bar.close()
    return out, labels


def train_oracle_stage(unet: torch.nn.Module, encoder: MiniLMEncoder, out_dir: str | Path, cfg: dict,
                       unet_cfg: dict, progress: Callable[[str], None] = print) -> dict:
    """Build the oracle's training data (clean, model-degraded, reject), train it, measure it.
    cfg: the config's pretrain.oracle, unet_cfg: its pretrain.unet (schema defaults filled)."""
    from .oracle import REJECT, classify, reject_images, train_oracle

    t0 = time.time()
    s = cfg["seed"] * 1000
    clean, clean_y, _ = render_batch(cfg["clean"], seed=s + 1, coloured=cfg["coloured_backgrounds"])
    degraded, degraded_y = degraded_renders(unet, encoder, cfg["degraded"], s + 2, cfg, unet_cfg)
    reject = reject_images(cfg["reject"], seed=s + 3)
    x = images_to_tensor(np.concatenate([clean, degraded, reject]))
    y = torch.from_numpy(np.concatenate([clean_y, degraded_y, np.full(len(reject), REJECT)]))
    model = train_oracle(x, y, cfg, progress)

    # Accuracy on data it never saw: fresh clean renders, fresh degraded renders, fresh reject images.
    eval_clean, eval_clean_y, _ = render_batch(cfg["eval_size"], seed=s + 11)
    eval_deg, eval_deg_y = degraded_renders(unet, encoder, cfg["eval_size"] // 2, s + 12, cfg, unet_cfg)
    eval_rej = reject_images(cfg["eval_size"] // 4, seed=s + 13)
    acc = lambda imgs, ys: 100 * (classify(model, images_to_tensor(imgs))[0].numpy() == ys).mean()
    per_class = {}
    pred = classify(model, images_to_tensor(eval_clean))[0].numpy()
    for k, name in enumerate(SHAPES):
        per_class[name] = round(100 * float((pred[eval_clean_y == k] == k).mean()), 2)
    metrics = {"fresh_renders_acc": round(float(acc(eval_clean, eval_clean_y)), 2),
               "fresh_renders_per_class": per_class,
               "degraded_renders_acc": round(float(acc(eval_deg, eval_deg_y)), 2),
               "reject_acc": round(float(acc(eval_rej, np.full(len(eval_rej), REJECT))), 2),
               **({"degraded_none_acc": round(float(acc(eval_deg[eval_deg_y == REJECT], REJECT)), 2)}
                  if (eval_deg_y == REJECT).any() else {}),
               "eval_sizes": {"fresh": len(eval_clean), "degraded": len(eval_deg), "reject": len(eval_rej)}}
    if cfg["coloured_backgrounds"]:   # fresh renders, every one on a coloured ground
        eval_col, eval_col_y, _ = render_batch(cfg["eval_size"], seed=s + 14, coloured=1.0)
        metrics["fresh_coloured_acc"] = round(float(acc(eval_col, eval_col_y)), 2)
    io.save_safetensors({k: v.contiguous() for k, v in model.state_dict().items()}, Path(out_dir) / "oracle.safetensors")
    return dict(config=cfg, metrics=metrics, wall_time_s=round(time.time() - t0, 1))
