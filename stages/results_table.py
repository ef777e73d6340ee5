"""Copy a run's tables under results/ with the command that regenerates them (rule `results`).

    python stages/results_table.py --csv R/summary.csv --md R/table.md --command "snakemake ..." \\
        --out-csv results/miniworld/methods.csv --out-md results/miniworld/methods.md
"""
import argparse

from erasure import cli
from erasure.report import copy_results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--csv", "--md", "--command", "--out-csv", "--out-md"):
        p.add_argument(name, required=True)
    p.add_argument("--png", help="the run's frontier plot (report.frontier), copied to --out-png")
    p.add_argument("--out-png")
    args = p.parse_args()
    if bool(args.png) != bool(args.out_png):
        p.error("--png and --out-png go together")
    copy_results(args.csv, args.md, args.command, args.out_csv, args.out_md, args.png, args.out_png)


if __name__ == "__main__":
    cli.run(main)
