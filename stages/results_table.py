"""Copy a run's tables under results/ with the command that regenerates them (rule `results`).

    python stages/results_table.py --csv R/summary.csv --md R/table.md --command "snakemake ..." \\
        --out-csv results/miniworld/methods.csv --out-md results/miniworld/methods.md \\
        [--per-prompt R/per_prompt.csv --out-per-prompt results/miniworld/methods_per_prompt.csv]
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
    p.add_argument("--per-prompt", help="the run's per_prompt.csv, copied to --out-per-prompt (what "
                                        "scripts/merge_results.py recomputes merged intervals from)")
    p.add_argument("--out-per-prompt")
    args = p.parse_args()
    if bool(args.png) != bool(args.out_png):
        p.error("--png and --out-png go together")
    if bool(args.per_prompt) != bool(args.out_per_prompt):
        p.error("--per-prompt and --out-per-prompt go together")
    copy_results(args.csv, args.md, args.command, args.out_csv, args.out_md, args.png, args.out_png,
                 args.per_prompt, args.out_per_prompt)


if __name__ == "__main__":
    cli.run(main)
