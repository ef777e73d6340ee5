"""The original-model table of the mini world: oracle accuracy per concept for its canonical prompt
and each held-out associated prompt (the analog of RealEra Table 1's "SD v1.4" row).

    make original
    # = snakemake --cores 2 original_table --configfile configs/miniworld_original.yaml

--command names another regenerate command, e.g. for the table of weights retrained by the pretrain stage.
"""
import argparse

from erasure import cli
from erasure.report import write_original_table

COMMAND = "make original  (snakemake --cores 2 original_table --configfile configs/miniworld_original.yaml)"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-prompt", required=True, help="report/per_prompt.csv of an original-only run")
    p.add_argument("--weights", required=True, help="weights directory (its card.json is cited)")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--command", default=COMMAND, help="the regenerate command cited in the .md")
    p.add_argument("--seed", type=int, required=True, help="the bootstrap's seed (the config's seed)")
    args = p.parse_args()
    write_original_table(args.per_prompt, args.weights, args.command, args.out_csv, args.out_md, args.seed)


if __name__ == "__main__":
    cli.run(main)
