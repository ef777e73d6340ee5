"""The original-model table of the mini world: oracle accuracy per concept for its canonical prompt
and each held-out associated prompt (the analog of RealEra Table 1's "SD v1.4" row).

    make original
    # = snakemake --cores 2 original_table --configfile configs/miniworld_original.yaml

--command names another regenerate command, e.g. for the table of weights retrained by the pretrain stage.
"""
import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

from erasure import io

COMMAND = "make original  (snakemake --cores 2 original_table --configfile configs/miniworld_original.yaml)"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-prompt", required=True, help="report/per_prompt.csv of an original-only run")
    p.add_argument("--weights", required=True, help="weights directory (its card.json is cited)")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--command", default=COMMAND, help="the regenerate command cited in the .md")
    args = p.parse_args()

    with open(args.per_prompt, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == "original"]
    by_concept = defaultdict(lambda: {"erase": [], "associated": []})
    for r in rows:
        if r["kind"] in ("erase", "associated"):
            by_concept[r["concept"]][r["kind"]].append(r)

    table = []
    md = [f"# Mini world: the original model\n", f"Regenerate: `{args.command}`\n",
          "Oracle accuracy (%) over images of each prompt (argmax label; a reject counts as wrong).\n",
          "| concept | canonical prompt | Acc (canonical) | held-out associated prompts: Acc each | mean |",
          "|---|---|---|---|---|"]
    for concept, kinds in by_concept.items():
        canon = kinds["erase"][0]
        assoc = kinds["associated"]
        mean = sum(float(a["acc"]) for a in assoc) / len(assoc) if assoc else float("nan")
        detail = "; ".join(f"{a['prompt']}: {float(a['acc']):.1f}" for a in assoc)
        table.append([concept, canon["prompt"], canon["acc"], canon["n"], f"{mean:.2f}", len(assoc), detail])
        md.append(f"| {concept} | {canon['prompt']} | {float(canon['acc']):.1f} | {detail} | {mean:.1f} |")
    card = Path(args.weights) / "card.json"
    if card.is_file():
        c = json.loads(card.read_text())
        md.append(f"\nWeights: `{args.weights}` (UNet {c['unet']['config']['steps']} steps, final loss "
                  f"{c['unet']['final_loss']:.4f}; oracle {c['oracle']['metrics']['fresh_renders_acc']}% on fresh renders, "
                  f"{c['oracle']['metrics']['degraded_renders_acc']}% on model-degraded renders).")
    io.write_csv(args.out_csv, ["concept", "canonical_prompt", "canonical_acc", "n_per_prompt", "associated_acc_mean",
                                "n_associated_prompts", "associated_detail"], table)
    io.write_text(args.out_md, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
