"""Merge committed SepME tables drawn by several runs (each a few of the sets, `sepme_draw`) into one table.

    python scripts/merge_sepme.py results/miniworld/parts/sepme_k1_k2 results/miniworld/parts/sepme_k4 \\
        --out results/miniworld/sepme

Each input is what `snakemake results` writes for a SepME config (PREFIX.csv and PREFIX.md). Its rows are
per set, model and concept, with no averages, so the merge keeps them as they are; the merged Markdown lists
every part's regenerate command, then the merge command.
"""
import argparse
import csv
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from erasure import io  # noqa: E402
from erasure.report import SEPME_COLUMNS, SEPME_TEXT, SEPME_TITLE, fmt, sepme_markdown  # noqa: E402


def read_part(prefix):
    """The part's rows (numbers as floats), its regenerate line and its protocol note."""
    csv_path, md_path = Path(f"{prefix}.csv"), Path(f"{prefix}.md")
    for path in (csv_path, md_path):
        if not path.is_file():
            sys.exit(f"merge_sepme: {path} not found (each input is a SepME results prefix with .csv and .md)")
    with csv_path.open(newline="", encoding="utf-8") as f:
        rows = [{k: v if k in SEPME_TEXT else float(v if v not in ("", "-") else "nan") for k, v in r.items()}
                for r in csv.DictReader(f)]
    lines = md_path.read_text(encoding="utf-8").splitlines()
    command = next((ln for ln in lines if ln.startswith("Regenerate:")), "")
    note = next((ln for ln in lines if "images per prompt" in ln), "")
    return rows, command, note


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="SepME results prefixes (PREFIX.csv and PREFIX.md)")
    p.add_argument("--out", required=True, help="output prefix: writes OUT.csv and OUT.md")
    args = p.parse_args(argv)
    if len(set(args.inputs)) < len(args.inputs):
        sys.exit("merge_sepme: an input is given twice; pass each results prefix once")
    parts = {prefix: read_part(prefix) for prefix in args.inputs}
    if len({note for _, _, note in parts.values()}) > 1:
        sys.exit("merge_sepme: the inputs used different protocols:\n  "
                 + "\n  ".join(sorted({note for _, _, note in parts.values()})))
    rows, seen = [], set()
    for prefix, (part_rows, _, _) in parts.items():
        for r in part_rows:
            key = (r["set"], r["model"], r["concept"])
            if key in seen:
                sys.exit(f"merge_sepme: set {key[0]}, model {key[1]}, {key[2]} is in more than one input ({prefix}); "
                         "draw each set in one part only")
            seen.add(key)
            rows.append(r)
    io.write_csv(f"{args.out}.csv", SEPME_COLUMNS,
                 [[r[c] if c in SEPME_TEXT else fmt(r[c], 2) for c in SEPME_COLUMNS] for r in rows])
    command = " ".join(["python scripts/merge_sepme.py", *map(shlex.quote, args.inputs), "--out", shlex.quote(args.out)])
    sources = "\n".join(f"- `{prefix}`: {cmd.removeprefix('Regenerate: ')}" for prefix, (_, cmd, _) in parts.items())
    note = next(iter(parts.values()))[2]
    io.write_text(f"{args.out}.md", f"{SEPME_TITLE}\n\nMerged from the tables below, each with its own command, "
                  f"then: `{command}`\n\n{sources}\n\n{note}\n\n{sepme_markdown(rows)}")
    print(f"merged {len(parts)} SepME tables: {len(rows)} rows -> {args.out}.csv, .md")


if __name__ == "__main__":
    main()
