"""MACE stage: closed-form refinement, the concept's LoRA trained with the attention loss, and the
closed-form fusion, for every cross-attention to_k / to_v (erasure/mace.py).

Writes the fused weights as deltas from the unedited model (safetensors keyed by module name, like the
closed form) and a JSON sidecar with the refinement's condition number and the LoRA's loss curve.

    python stages/mace.py --config config.yaml --method mace --concept heart \\
        --out outputs/miniworld/edit/mace/heart.safetensors
"""
import time

import torch

from erasure import cli, io, mace, params
from erasure.sampling import prompt_latents
from erasure.world import load_world_from_params


def main():
    args, prm = cli.edit_stage(__doc__, params.mace)
    cfg, concept = prm["mace"], prm["concept"]
    t0 = time.time()

    # 1. The unedited model, its projections, and the images of the concept it draws (the LoRA's x_0).
    world = load_world_from_params(prm)
    world.unet.requires_grad_(False)
    modules = world.edit_modules()
    originals = {name: m.weight.detach().double().cpu() for name, m in modules.items()}
    erase_prompts = [t.format(concept) for t in cfg["templates"]]
    enc = world.encoder
    preserve = enc.encode_tokens(prm["preserve_prompts"]).flatten(0, 1).double().cpu() if prm["preserve_prompts"] \
        else torch.zeros(0, enc.dim, dtype=torch.float64)
    z0 = None
    if prm["attention_lora"]:
        z0 = prompt_latents(world, prm["image_prompt"], [prm["seed"] + k for k in range(cfg["images"])], prm["generate"])

    # 2. Closed-form refinement: the words around the concept mapped to the anchor prompt's.
    m, cond_number, n_rows = mace.refinement(enc, erase_prompts, [t.format(prm["mapping"]) for t in cfg["templates"]],
                                             preserve, cfg)
    refined = {name: w0 @ m for name, w0 in originals.items()}
    with torch.no_grad():
        for name, module in modules.items():
            module.weight.copy_(refined[name].to(module.weight))

    # 3. The concept's LoRA on the refined model, then the fusion.
    losses, fused = [], refined
    if prm["attention_lora"]:
        positions = mace.concept_positions(enc, erase_prompts, concept, cfg["use_pooler"])
        gen = torch.Generator().manual_seed(prm["seed"])
        erase_emb = enc.encode(erase_prompts)                                   # [P, L, D]
        lora, losses = mace.train_lora(world.unet, world.make_train_scheduler(), z0, erase_emb, positions, cfg, gen)
        contexts = [erase_emb[:, :enc.max_length].flatten(0, 1).double().cpu()]
        fused = mace.fuse(refined, originals, [{k: v.cpu() for k, v in lora.items()}], contexts, preserve, cfg)

    dtype = next(iter(modules.values())).weight.dtype
    deltas = {name: (w - originals[name]).to(dtype).contiguous() for name, w in fused.items()}
    io.save_safetensors(deltas, args.out)
    io.write_json(io.sidecar_path(args.out), {
        **prm, "method": args.method, "cfr_rows": n_rows, "cfr_condition_number": cond_number,
        "lora_losses": [round(x, 6) for x in losses], "modules": len(deltas),
        "max_relative_change": max((d.double().norm() / originals[n].norm()).item() for n, d in deltas.items()),
        "wall_time_s": round(time.time() - t0, 3)})
    cli.progress(f"mace {args.method}/{concept}: {len(deltas)} projections, {n_rows} CFR rows"
                 + (f", attention loss {losses[0]:.4g} -> {losses[-1]:.4g}" if losses else ""))


if __name__ == "__main__":
    cli.run(main)
