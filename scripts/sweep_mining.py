"""Sample-free sweep of mining and regularization settings on the mini world (remap scores).

For every concept erased in turn (anchor from the config), every sampler (none, paper, data), every
neighbour radius D1 and every regularization (none, paper, projected): mine, solve the closed form,
and measure the remap score of the erased prompt, its held-out associated prompts, the other
concepts' canonical prompts and their associated prompts. No images are drawn, so this ranks
settings cheaply; the sampled tables (Acc_e, Acc_s, Acc_g) have the last word.

    python scripts/sweep_mining.py [--config config.yaml] [--d1 0.3 0.6 1.0] [--out results/miniworld/mining_sweep]
"""
import argparse
import itertools
from collections import defaultdict

import torch

from erasure import io
from erasure.closed_form import least_squares_rows, mixing_matrix, remap_score, weight_deltas
from erasure.config import load_config
from erasure.prompts import prompt_table
from erasure.mining import align, mine, principal_directions
from erasure.params import derived_seed
from erasure.prompts import preserve_prompts, prompt_bank
from erasure.metrics import group_of
from erasure.world import load_miniworld

GROUPS = ("e", "g", "s", "sg")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--d1", type=float, nargs="+", default=[0.3, 0.6, 1.0])
    p.add_argument("--out", default="results/miniworld/mining_sweep")
    args = p.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config)
    world = load_miniworld(config["miniworld"]["weights"])
    enc, modules = world.encoder, world.edit_modules()
    rows_table = prompt_table(config)
    prompt_emb = enc.encode([r["prompt"] for r in rows_table])
    anchor = enc.encode([config["anchor"]])[0]
    bank = enc.encode(prompt_bank(config))
    basis = principal_directions(bank.reshape(-1, bank.shape[-1]), config["mining"]["data_components"])
    cf = config["closed_form"]
    concepts = sorted({r["concept"] for r in rows_table})

    settings = [("none", None, "none")] + list(itertools.product(["paper", "data"], args.d1,
                                                                  ["none", "paper", "projected"]))
    results = []
    for concept in concepts:
        e, a = align(enc.encode([config["prompt_template"].format(concept)])[0], anchor, 0, 0)
        preserve = enc.encode(preserve_prompts(config, concept)).flatten(0, 1)
        for sampler, d1, reg in settings:
            entry = {"erase": e, "anchor": a, "neighbors": None, "anchors": None, "beyond": None}
            if sampler != "none":
                mcfg = {**config["mining"], "d1": d1}
                sets, _ = mine(e, a, mcfg, derived_seed(config, "sweep", sampler, concept),
                               basis if sampler == "data" else None)
                entry.update(sets)
            erase, targets, keep, weights, _ = least_squares_rows([entry], preserve, reg, cf["reg_weight"])
            m, _ = mixing_matrix(erase, targets, keep, cf["lam"], cf["ridge"], preserve_weights=weights)
            deltas = weight_deltas(modules, m)
            groups = defaultdict(list)
            for i, r in enumerate(rows_table):
                groups[group_of(r, concept)].append(remap_score(modules, deltas, prompt_emb[i], anchor))
            results.append([concept, sampler, d1 if d1 is not None else "", reg,
                            *[round(sum(groups[g]) / len(groups[g]), 4) for g in GROUPS]])
        print(f"{concept}: {len(settings)} settings", flush=True)

    header = ["concept", "sampler", "d1", "regularization", "remap_e", "remap_g", "remap_s", "remap_sg"]
    io.write_csv(f"{args.out}.csv", header, results)
    md = [f"# Mining sweep on the mini world (remap scores, sample-free)\n",
          f"Regenerate: `python scripts/sweep_mining.py --config {args.config}`\n",
          "Mean over the 8 concepts, each erased in turn. remap_e: the erased prompt (1 = fully mapped to the "
          "anchor); remap_g: its held-out associated prompts (higher = less residue); remap_s / remap_sg: the "
          "other concepts' canonical / associated prompts (lower = less collateral damage).\n",
          "| sampler | d1 | regularization | remap_e ↑ | remap_g ↑ | remap_s ↓ | remap_sg ↓ |", "|---|---|---|---|---|---|---|"]
    for sampler, d1, reg in settings:
        sel = [r for r in results if r[1] == sampler and r[2] == (d1 if d1 is not None else "") and r[3] == reg]
        means = [sum(r[4 + k] for r in sel) / len(sel) for k in range(4)]
        md.append(f"| {sampler} | {d1 if d1 is not None else '-'} | {reg} | " + " | ".join(f"{v:.3f}" for v in means) + " |")
    io.write_text(f"{args.out}.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
