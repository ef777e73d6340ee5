"""ESD stage: fine-tune cross-attention (ESD-x) or the rest of the UNet (ESD-u) to erase one concept.

Saves the change of every trained parameter (trained - original, keyed by parameter name) as
safetensors, so the generate and remap stages apply it like closed-form deltas; plus a JSON sidecar.
Checkpoints every 20 iterations and resumes from the last checkpoint.

    python stages/train_esd.py --config config.yaml --method esd_x --concept heart \\
        --out outputs/miniworld/edit/esd_x/heart.safetensors
"""
import copy
import time
from pathlib import Path

import torch

from erasure import checkpoint, cli, esd, io, params as stage_params
from erasure.world import load_world_from_params

CHECKPOINT_EVERY = 20


def main():
    p = cli.parser(__doc__)
    p.add_argument("--method", default=None)
    p.add_argument("--concept", default=None)
    p.add_argument("--out", required=True, help="deltas .safetensors (a .json sidecar is written beside it)")
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, stage_params.train_esd, args.method, args.concept)
    cfg = prm["esd"]
    out = Path(args.out)
    t0 = time.time()

    # 1. Frozen teacher in the world's dtype; the student is a float32 copy that trains only the chosen
    # parameters (float32 master weights, as the reference trains: Adam's small updates vanish in float16).
    world = load_world_from_params(prm)
    teacher = copy.deepcopy(world.unet).eval().requires_grad_(False)
    student = world.unet.float().train().requires_grad_(False)
    names = esd.trainable_names(student, prm["train"])
    named = dict(student.named_parameters())
    params = [named[n] for n in names]
    original = {n: named[n].detach().clone() for n in names}
    for q in params:
        q.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    gen = torch.Generator().manual_seed(prm["seed"])
    # clone(): the encoder runs in inference mode, and inference tensors cannot be saved for backward.
    cond, null, source = (e.clone() for e in world.encoder.encode([prm["prompt"], "", cfg["erase_from"]]))

    # 2. Resume from a checkpoint if one exists, then train.
    ckpt = out.with_name(out.stem + ".checkpoint.safetensors")
    run_owner = checkpoint.owner(prm)
    start, _, _ = checkpoint.resume(ckpt, params, opt, gen, run_owner, cli.progress)
    if start:
        cli.progress(f"resuming ESD training at iteration {start}")
    losses = []
    for it, loss in esd.train(student, teacher, world.make_scheduler(), cond, null, source, cfg, gen,
                              world.latent_shape, params, opt, start):
        losses.append(loss)
        if it % CHECKPOINT_EVERY == 0 and it < cfg["iterations"]:
            checkpoint.save(ckpt, params, opt, gen, it, metadata={"owner": run_owner})

    # 3. Deltas of the trained parameters, and the sidecar.
    deltas = {n: (named[n].detach() - original[n]).contiguous() for n in names}
    io.save_safetensors(deltas, out)
    io.write_json(io.sidecar_path(out), {
        **prm, "method": args.method, "trained_parameters": len(names),
        "trained_values": sum(d.numel() for d in deltas.values()), "iterations_run": cfg["iterations"] - start,
        "final_losses": [round(x, 6) for x in losses[-10:]], "wall_time_s": round(time.time() - t0, 1)})
    ckpt.unlink(missing_ok=True)
    cli.progress(f"ESD {prm['train']} {prm['concept']}: {len(names)} parameters, {time.time() - t0:.0f}s")


if __name__ == "__main__":
    cli.run(main)
