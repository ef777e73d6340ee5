"""SPEED stage: a null-space constrained closed-form edit of every cross-attention to_v (erasure/speed.py).

The erase prompt's rows from its last subject token to the end are mapped to the anchor's rows
(tail-aligned, as UCE's 2023 code); the preserve prompts are the retain candidates (refined by IPF and
DPA per layer); the null text's rows are the invariants. Writes weight deltas (safetensors keyed by
module name, like the closed form) and a JSON sidecar with each layer's refinement statistics.

    python stages/speed.py --config config.yaml --method speed --concept heart \\
        --out outputs/miniworld/edit/speed/heart.safetensors
"""
import time

import torch

from erasure import cli, io, params, speed, uce
from erasure.world import load_world_from_params


def main():
    args, prm = cli.edit_stage(__doc__, params.speed)
    t0 = time.time()

    # 1. The model's value projections and the rows: erase -> anchor, retain candidates, invariants.
    world = load_world_from_params(prm)
    values = {name: m for name, m in world.edit_modules().items() if name.endswith("to_v")}
    cfg = prm["speed"]
    erase, anchors, _ = uce.rows(world.encoder, prm["erase_prompts"], cfg["anchor"], [], "tail")
    candidates = list(world.encoder.encode_tokens(prm["preserve_prompts"]).cpu()) if prm["preserve_prompts"] else []
    invariants = world.encoder.encode_tokens([""])[0].cpu()     # the null text, its start token included

    # 2. One edit per layer, in float64; deltas stored in the model's dtype.
    generator = torch.Generator().manual_seed(prm["seed"])
    deltas, layers = {}, {}
    for name, module in values.items():
        w0 = module.weight.detach().cpu()
        delta, layers[name] = speed.edit_layer(w0, erase.cpu(), anchors.cpu(), candidates, invariants, cfg, generator)
        deltas[name] = delta.to(w0.dtype).contiguous()

    io.save_safetensors(deltas, args.out)
    io.write_json(io.sidecar_path(args.out), {**prm, "method": args.method, "erase_rows": len(erase),
                                             "modules": len(deltas), "layers": layers,
                                             "wall_time_s": round(time.time() - t0, 3)})
    dims = sorted({s["edit_space_dim"] for s in layers.values()})
    cli.progress(f"speed {args.method}/{prm['concept']}: {len(deltas)} value projections, {len(erase)} erase rows, "
                 f"edit space of {dims[0]}-{dims[-1]} dimensions")


if __name__ == "__main__":
    cli.run(main)
