"""Closed-form stage: RealEra Eq. 7 (or UCE's, for kind uce) for every cross-attention to_k / to_v at once.

Erase rows (the clean span and its mined neighbours) map to the anchor rows under W0; preserved rows
(every token of the preserve prompts, plus beyond-concept samples unless regularization is none)
keep their W0 image; a small ridge pulls toward W0. One D x D solve in float64 serves every layer.
Writes weight deltas (safetensors keyed by module name) and a JSON sidecar.

    python stages/closed_form.py --config config.yaml --method realera --concept heart \\
        --embeddings outputs/miniworld/mine/paper/heart.safetensors --out outputs/miniworld/edit/realera/heart.safetensors

Kind uce builds its rows from the prompts (erasure/uce.py) and needs no embedding set.
Regularization: none | paper (beyond samples kept at W0(e + d)) | projected (their component along
each erase token removed first, so they cannot pull the erased direction back).
"""
import time

import torch

from erasure import cli, embedding_set, io, params as stage_params, uce
from erasure.closed_form import least_squares_rows, mixing_matrix, weight_deltas
from erasure.pooled import method_delta
from erasure.world import load_world_from_params


def main():
    p = cli.parser(__doc__)
    p.add_argument("--method", required=True)
    p.add_argument("--concept", required=True, help="concept file name (slug)")
    p.add_argument("--embeddings", help="embedding set from the mine stage (not for kind uce)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, stage_params.closed_form, args.method, args.concept)
    uce_kind = prm["kind"] == "uce"
    if not uce_kind and not args.embeddings:
        raise ValueError("--embeddings is required for this method (its mining output)")
    # A bad embedding set stops the stage before the model is loaded.
    prompts, mined = embedding_set.load(args.embeddings) if not uce_kind else (None, {})
    t0 = time.time()

    # 1. The model's edited projections.
    world = load_world_from_params(prm)
    modules = world.edit_modules()

    # 2. Least-squares rows, then one shared solve.
    if uce_kind:
        u = prm["uce"]
        erase, targets, preserve = uce.rows(world.encoder, prm["erase_prompts"], u["guide"], prm["preserve_prompts"],
                                            prm["tokens"])
        preserve_tokens, n_beyond = preserve, 0
        m, cond = mixing_matrix(erase, targets, preserve, u["preserve_scale"], u["lamb"],
                                erase_weights=torch.full((len(erase),), float(u["erase_scale"])))
    else:
        # every position of the preserve prompts' tokens: [P * L, D]
        preserve_tokens = world.encoder.encode_tokens(prm["preserve_prompts"]).flatten(0, 1)
        cf = prm["closed_form"]
        erase, targets, preserve, weights, n_beyond = least_squares_rows(prompts, preserve_tokens,
                                                                         prm["regularization"], cf["reg_weight"])
        m, cond = mixing_matrix(erase, targets, preserve, cf["lam"], cf["ridge"], preserve_weights=weights)

    # 3. Deltas for every to_k / to_v (SDXL: and the pooled path, on request), and the sidecar.
    deltas = weight_deltas(modules, m)
    max_change = max((d.norm() / modules[n].weight.norm()).item() for n, d in deltas.items())
    pooled_cond = None
    if prm["pooled"]:
        pooled_edit, pooled_cond = method_delta(prm, world.unet, world.encoder, mined)
        deltas.update(pooled_edit)
    io.save_safetensors(deltas, args.out)
    io.write_json(io.sidecar_path(args.out), {
        **prm, "method": args.method, "embeddings": str(args.embeddings) if args.embeddings else None, "embedding_seed": mined.get("seed"),
        "rows": {"erase": len(erase), "preserve_prompts_tokens": len(preserve_tokens), "beyond": n_beyond},
        "gram_condition_number": cond, "modules": len(deltas), "max_relative_change": max_change,
        "pooled_condition_number": pooled_cond,
        "wall_time_s": round(time.time() - t0, 3)})
    cli.progress(f"closed form {args.method}/{prm['concept']}: {len(deltas)} projections, "
                 f"{len(erase)} erase rows, {len(preserve)} preserve rows, cond {cond:.3g}")


if __name__ == "__main__":
    cli.run(main)
