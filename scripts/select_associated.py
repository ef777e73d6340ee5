"""Pick the mini world's held-out associated prompts (the Acc_g set) from hand-written candidates.

A candidate is kept only if its mean-pooled MiniLM embedding is nearest (by cosine) to a training
name of its own concept: otherwise "before erasure" Acc_g would be meaningless. Writes
data/miniworld/concepts.json with the similarities, and lists the rejected candidates.

    python scripts/select_associated.py [--keep 4]
"""
import argparse
import json
from pathlib import Path

import torch

from erasure.text import MiniLMEncoder

DATA = Path(__file__).resolve().parent.parent / "data" / "miniworld"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=int, default=4, help="associated prompts kept per concept")
    args = parser.parse_args()

    spec = json.loads((DATA / "candidates.json").read_text())
    concepts = spec["concepts"]
    encoder = MiniLMEncoder()
    name_owner = [(c, n) for c, v in concepts.items() for n in v["names"]]
    name_emb = encoder.pooled([f"a {n}" for _, n in name_owner])  # [Nn, D]

    out = {"templates": spec["templates"], "concepts": {}}
    for concept, v in concepts.items():
        sims = encoder.pooled(v["candidates"]) @ name_emb.T  # [Nc, Nn]
        kept, rejected = [], []
        for prompt, row in zip(v["candidates"], sims):
            best = {}
            for (owner, _), s in zip(name_owner, row.tolist()):
                best[owner] = max(best.get(owner, -1.0), s)
            nearest = max(best, key=best.get)
            other = max(s for o, s in best.items() if o != concept)
            entry = {"prompt": prompt, "similarity": round(best[concept], 4),
                     "margin": round(best[concept] - other, 4), "nearest": nearest}
            (kept if nearest == concept else rejected).append(entry)
        # Prompts that merely repeat a training name are not "associated": drop exact name overlaps.
        kept = [e for e in kept if not any(n in e["prompt"] for n in v["names"])] or kept
        kept.sort(key=lambda e: -e["margin"])
        out["concepts"][concept] = {
            "name": concept,
            "synonyms": v["names"],
            "associated": kept[:args.keep],
            "rejected_candidates": rejected + kept[args.keep:],
        }
        print(f"{concept:9s} kept {[e['prompt'] for e in kept[:args.keep]]}  ({len(rejected)} rejected)")
    (DATA / "concepts.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
