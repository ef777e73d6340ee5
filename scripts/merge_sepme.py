"""Merge committed SepME tables drawn by several runs (each a few of the sets, `sepme_draw`) into one table.

    python scripts/merge_sepme.py results/miniworld/parts/sepme_k1_k2 results/miniworld/parts/sepme_k4 \\
        --out results/miniworld/sepme

Each input is what `snakemake results` writes for a SepME config (PREFIX.csv and PREFIX.md). Its rows are
per set, model and concept, with no averages, so the merge keeps them as they are; the merged Markdown lists
every part's regenerate command, then the merge command.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from erasure import io, merging  # noqa: E402
from erasure.report import SEPME_COLUMNS, SEPME_TEXT, SEPME_TITLE, fmt, sepme_markdown  # noqa: E402


def read_part(prefix):
    """The part's rows (numbers as floats), its regenerate line and its protocol note."""
    _, rows, lines = merging.read_table(prefix, "merge_sepme", "SepME results")
    rows = [{k: v if k in SEPME_TEXT else float(v if v not in ("", "-") else "nan") for k, v in r.items()} for r in rows]
    return rows, merging.line_with(lines, "Regenerate:", start=True), merging.line_with(lines, "images per prompt")


def main(argv=None):
    args = merging.parse(merging.parser(__doc__, "SepME results"), argv, "merge_sepme")
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
    head = merging.provenance("merge_sepme", {prefix: cmd for prefix, (_, cmd, _) in parts.items()}, args.out)
    note = next(iter(parts.values()))[2]
    io.write_text(f"{args.out}.md", f"{SEPME_TITLE}\n\n{head}\n\n{note}\n\n{sepme_markdown(rows)}")
    print(f"merged {len(parts)} SepME tables: {len(rows)} rows -> {args.out}.csv, .md")


if __name__ == "__main__":
    main()
