"""Merge committed results tables that share one protocol into a single table (averages recomputed).

A table whose concepts were run by several configs (for example the mini-world ablation: heart and
crescent in one run, the six other concepts in another) is merged here rather than re-run:

    python scripts/merge_results.py results/miniworld/ablation_heart_crescent results/miniworld/ablation_more \\
        --out results/miniworld/ablation

Each input is a results table written by the `results` rule (PREFIX.csv and PREFIX.md). The merged
Markdown lists every part's own regenerate command, then the merge command.
"""
import argparse
import csv
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from erasure import io  # noqa: E402
from erasure.metrics import average_rows  # noqa: E402
from erasure.report import TEXT_COLUMNS, markdown_table, remap_table, summary_cells  # noqa: E402


def read_part(prefix):
    """Rows (without the part's averages), CSV header, and the .md's regenerate line and protocol note."""
    csv_path, md_path = Path(f"{prefix}.csv"), Path(f"{prefix}.md")
    for path in (csv_path, md_path):
        if not path.is_file():
            sys.exit(f"merge_results: {path} not found (each input is a results prefix with .csv and .md)")
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = [parse_row(r) for r in reader if r["concept"] != "average"]
    lines = md_path.read_text(encoding="utf-8").splitlines()
    command = next((ln for ln in lines if ln.startswith("Regenerate:")), "")
    note = next((ln for ln in lines if "images per prompt" in ln), "")
    return rows, header, command, note


def parse_row(row):
    out = {}
    for key, value in row.items():
        if key == "n_images":
            out[key] = int(value)
        elif key in TEXT_COLUMNS:
            out[key] = value
        else:
            out[key] = float("nan") if value in ("", "-") else float(value)
    return out


def merge(parts):
    """Concatenate the parts' rows; a (method, concept) in two parts, or parts with different image
    counts per prompt, is an error: their numbers would not be comparable."""
    rows, header, seen, notes = [], [], set(), set()
    for prefix, (part_rows, part_header, _, note) in parts.items():
        notes.add(note)
        header += [c for c in part_header if c not in header]
        for r in part_rows:
            key = (r["method"], r["concept"])
            if key in seen:
                sys.exit(f"merge_results: {key[0]} / {key[1]} is in more than one input ({prefix}); "
                         "pass each concept's table once")
            seen.add(key)
            rows.append(r)
    if len(notes) > 1:
        sys.exit("merge_results: the inputs used different protocols:\n  " + "\n  ".join(sorted(notes)))
    return rows, header


def first_seen(values):
    return list(dict.fromkeys(values))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="results prefixes (PREFIX.csv and PREFIX.md)")
    p.add_argument("--out", required=True, help="output prefix: writes OUT.csv and OUT.md")
    args = p.parse_args(argv)
    if len(set(args.inputs)) < len(args.inputs):
        sys.exit("merge_results: an input is given twice; pass each results prefix once")

    parts = {prefix: read_part(prefix) for prefix in args.inputs}
    rows, header = merge(parts)
    methods = first_seen(r["method"] for r in rows)
    concepts = first_seen(r["concept"] for r in rows)
    rows = [r for m in methods for r in rows if r["method"] == m] + average_rows(rows, methods)

    io.write_csv(f"{args.out}.csv", header, [summary_cells(r, header) for r in rows])
    command = " ".join(["python scripts/merge_results.py", *map(shlex.quote, args.inputs), "--out", shlex.quote(args.out)])
    sources = "\n".join(f"- `{prefix}`: {cmd.removeprefix('Regenerate: ')}" for prefix, (_, _, cmd, _) in parts.items())
    note = next(iter(parts.values()))[3]
    io.write_text(f"{args.out}.md",
                  f"# Erasure results\n\nMerged from the tables below, each with its own command, then: `{command}`\n\n"
                  f"{sources}\n\n{note}\n\n{markdown_table(rows, concepts, methods)}\n"
                  f"## Remap scores\n\n{remap_table(rows, methods)}")
    print(f"merged {len(parts)} tables: {len(methods)} methods x {len(concepts)} concepts -> {args.out}.csv, .md")


if __name__ == "__main__":
    main()
