"""LoRA stage: prediction-noise alignment (RealEra Eq. 8/9) on top of the closed-form-edited UNet.

Writes pytorch_lora_weights.safetensors in the format StableDiffusionPipeline.load_lora_weights
reads (and UNet2DConditionModel.load_lora_adapter, for the mini world), plus a JSON sidecar.
Checkpoints every 20 steps and resumes from the last checkpoint.

    python stages/train_lora.py --config config.yaml --method realera --concept heart \\
        --deltas outputs/miniworld/edit/realera/heart.safetensors \\
        --embeddings outputs/miniworld/mine/paper/heart.safetensors \\
        --out outputs/miniworld/lora/realera/heart/pytorch_lora_weights.safetensors
"""
import copy
import tempfile
import time
from pathlib import Path

import torch

from erasure import checkpoint, cli, embedding_set, io, lora, params as stage_params
from erasure.edits import apply_edit
from erasure.mining import principal_directions
from erasure.sampling import sample
from erasure.world import load_world_from_params

CHECKPOINT_EVERY = 20


def main():
    p = cli.parser(__doc__)
    p.add_argument("--method", default=None)
    p.add_argument("--concept", default=None)
    p.add_argument("--deltas", required=True)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--out", required=True, help=".../pytorch_lora_weights.safetensors")
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, stage_params.train_lora, args.method, args.concept)
    cfg = prm["lora"]
    out = Path(args.out)
    t0 = time.time()

    # 1. Teacher (original), student (closed-form edit + LoRA on attn2 to_k / to_v).
    world = load_world_from_params(prm)
    teacher = copy.deepcopy(world.unet).eval().requires_grad_(False)
    apply_edit(world, args.deltas)
    student = world.unet
    params = lora.add_lora(student, cfg["rank"], prm["seed"])
    for prm_ in params:
        prm_.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=0.0)
    gen = torch.Generator().manual_seed(prm["seed"])

    # 2. Conditions: clean spans from the embedding set; full prompts for the positions outside them.
    prompts, mined = embedding_set.load(args.embeddings)
    entry = {**prompts[0], **mined["prompts"][0]}
    enc = world.encoder
    erase_full = enc.encode([mined["erase_prompts"][0]])
    anchor_full = enc.encode([mined["anchor"]])
    basis = None
    if mined["sampler"] == "data":
        bank = enc.encode(mined["prompt_bank"])
        basis = principal_directions(bank.reshape(-1, bank.shape[-1]), mined["mining"]["data_components"])
    preserve = enc.encode(prm["preserve_prompts"])
    sampler = lora.ConditionSampler(erase_full, anchor_full, entry, mined["mining"], prm["regularization"],
                                    preserve, gen, basis)

    # 3. z0: images the original model draws for the anchor prompt (seeded), in latent space.
    seeds = [prm["seed"] + k for k in range(cfg["anchor_images"])]
    z0 = sample(teacher, world.make_scheduler(), anchor_full.expand(len(seeds), -1, -1), world.null_embedding(),
                seeds, world.latent_shape, steps=cfg["anchor_steps"], guidance=cfg["anchor_guidance"])

    # 4. Resume from a checkpoint if one exists, then train.
    ckpt = out.parent / "checkpoint.safetensors"
    start = 0
    if ckpt.exists():
        start, _, _ = checkpoint.load(ckpt, params, opt, gen)
        cli.progress(f"resuming LoRA training at step {start}")
    losses = []
    for step, losses in lora.train(student, teacher, world.make_train_scheduler(), z0, sampler, cfg, gen,
                                   cli.progress, start, opt, params):
        if step % CHECKPOINT_EVERY == 0 and step < cfg["steps"]:
            checkpoint.save(ckpt, params, opt, gen, step)

    # 5. Save in diffusers' LoRA format (atomic: write in a temp dir, then rename).
    from diffusers import StableDiffusionPipeline
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        StableDiffusionPipeline.save_lora_weights(tmp, unet_lora_layers=lora.lora_state_dict(student))
        Path(tmp, "pytorch_lora_weights.safetensors").replace(out)
    io.write_json(out.with_suffix(".json"), {**prm, "method": args.method, "steps_run": cfg["steps"] - start,
                                             "final_losses": [round(x, 6) for x in losses[-10:]],
                                             "wall_time_s": round(time.time() - t0, 1)})
    ckpt.unlink(missing_ok=True)


if __name__ == "__main__":
    cli.run(main)
