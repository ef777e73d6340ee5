"""Mine stage: token embeddings of a concept's erase prompts and anchor, neighbour copies and
beyond-concept samples (RealEra Alg. 1). Writes one embedding set (safetensors + JSON sidecar).

    python stages/mine.py --config config.yaml --concept heart --sampler paper --out outputs/x/heart.safetensors

Samplers: none (clean spans only), paper (isotropic, Alg. 1), data (prompt-bank principal subspace).
"""
import time


from erasure import cli, io, params as stage_params
from erasure.io import sidecar_path
from erasure.mining import align, anchor_span_start, edit_span, mine, principal_directions
from erasure.world import load_text_encoder


def main():
    p = cli.parser(__doc__)
    p.add_argument("--concept", required=True, help="concept file name (slug) from the concepts file")
    p.add_argument("--sampler", required=True, choices=["none", "paper", "data"])
    p.add_argument("--out", required=True, help="output .safetensors (a .json sidecar is written beside it)")
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, stage_params.mine, args.sampler, args.concept)
    t0 = time.time()

    # 1. Encode the erase prompts and the anchor; find the edited span of each.
    encoder, causal = load_text_encoder(prm)
    word = prm["concept"]
    erase_emb = encoder.encode_tokens(prm["erase_prompts"])   # [P, L, D]
    anchor_emb = encoder.encode_tokens([prm["anchor"]])[0]     # [L, D]
    anchor_start = anchor_span_start(encoder, prm["anchor"], causal)

    # 2. Principal directions of the prompt bank (data sampler only).
    basis = None
    if prm["sampler"] == "data":
        bank = encoder.encode_tokens(prm["prompt_bank"])
        basis = principal_directions(bank.reshape(-1, bank.shape[-1]), prm["mining"]["data_components"])

    # 3. Per erase prompt: aligned clean spans, then neighbours, perturbed anchors and beyond samples.
    tensors, stats = {}, []
    for i, prompt in enumerate(prm["erase_prompts"]):
        start = edit_span(encoder, prompt, word, causal)
        e, a = align(erase_emb[i], anchor_emb, start, anchor_start)
        tensors[f"p{i}.erase"], tensors[f"p{i}.anchor"] = e.contiguous(), a.contiguous()
        entry = {"prompt": prompt, "span_start": start, "anchor_start": anchor_start, "span_tokens": e.shape[0]}
        if prm["sampler"] != "none":
            sets, entry["stats"] = mine(e, a, prm["mining"], prm["seed"] + i, basis)
            for k, v in sets.items():
                tensors[f"p{i}.{k}"] = v.contiguous()
            cli.progress(f"mine {word!r} prompt {i}: accepted neighbours {entry['stats']['neighbors']['acceptance_rate']:.3f}, "
                         f"beyond {entry['stats']['beyond']['acceptance_rate']:.3f}")
        stats.append(entry)

    # 4. Write the set and its sidecar (sidecar last: its presence marks a complete set).
    io.save_safetensors(tensors, args.out)
    io.write_json(sidecar_path(args.out), {**prm, "num_prompts": len(stats), "prompts": stats,
                                           "wall_time_s": round(time.time() - t0, 2)})


if __name__ == "__main__":
    cli.run(main)
