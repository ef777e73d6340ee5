"""Copy a run's tables under results/ with the command that regenerates them (rule `results`).

    python stages/results_table.py --csv R/summary.csv --md R/table.md --command "snakemake ..." \\
        --out-csv results/miniworld/methods.csv --out-md results/miniworld/methods.md
"""
import argparse
from pathlib import Path

from erasure import io


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--csv", "--md", "--command", "--out-csv", "--out-md"):
        p.add_argument(name, required=True)
    args = p.parse_args()
    md = Path(args.md).read_text(encoding="utf-8")
    title, _, body = md.partition("\n")
    io.write_text(args.out_md, f"{title}\n\nRegenerate: `{args.command}`\n{body}")
    io.write_text(args.out_csv, Path(args.csv).read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
