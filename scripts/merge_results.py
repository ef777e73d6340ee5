"""Merge committed results tables that share one protocol into a single table (averages recomputed).

A table whose concepts were run by several configs (for example the mini-world ablation: heart and
crescent in one run, the six other concepts in another) is merged here rather than re-run:

    python scripts/merge_results.py results/miniworld/ablation_heart_crescent results/miniworld/ablation_more \\
        --out results/miniworld/ablation

Each input is a results table written by the `results` rule (PREFIX.csv and PREFIX.md). The merged
Markdown lists every part's own regenerate command, then the merge command. When every part also has its
per-prompt counts (PREFIX_per_prompt.csv, which the `results` rule writes beside the table), the merged
averages get their 95% bootstrap intervals, recomputed from those counts, and OUT_per_prompt.csv is
written so a merged table can be merged again; otherwise the averages are point estimates.
"""
import csv
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from erasure import io, merging  # noqa: E402
from erasure.metrics import ACCURACIES, average_rows, labels_from_per_prompt  # noqa: E402
from erasure.report import TEXT_COLUMNS, markdown_table, remap_table, summary_cells  # noqa: E402


def read_part(prefix):
    """Rows (without the part's averages), CSV header, and the .md's regenerate line and protocol note."""
    header, rows, lines = merging.read_table(prefix, "merge_results", "results")
    rows = [parse_row(r) for r in rows if r["concept"] != "average"]
    return rows, header, merging.line_with(lines, "Regenerate:", start=True), merging.line_with(lines, "images per prompt")


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


def read_per_prompt(prefix):
    """The part's per-prompt rows (PREFIX_per_prompt.csv), or None when it has none."""
    path = Path(f"{prefix}_per_prompt.csv")
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def attach_labels(prefix, rows, per_prompt):
    """Give each (method, concept) row its per-prompt labels, rebuilt from the part's counts, after checking
    that they give the row's own accuracies (a per-prompt file from another run is refused). The unedited
    model's rows are its "(none)" rows, or, in a merged file, rows under the concept itself."""
    for r in rows:
        erased = {r["concept"], "(none)"} if r["method"] == "original" else {r["concept"]}
        mine = [p for p in per_prompt if p["method"] == r["method"] and p["erased"] in erased]
        if r["method"] == "original" and any(p["erased"] == r["concept"] for p in mine):
            mine = [p for p in mine if p["erased"] == r["concept"]]
        labels = labels_from_per_prompt(mine, r["concept"])
        for key in (k for k in ACCURACIES if k in r):
            hits = [x for images in labels[key.removeprefix("acc_")].values() for x in images]
            rebuilt = 100 * sum(hits) / len(hits) if hits else float("nan")
            if math.isnan(rebuilt) != math.isnan(r[key]) or abs(rebuilt - r[key]) > 0.01:
                sys.exit(f"merge_results: {prefix}_per_prompt.csv gives {r['method']} / {r['concept']} {key} "
                         f"{rebuilt:.2f}, its table {r.get(key)}: the per-prompt file is not this table's run")
        r["labels"], r["per_prompt"] = labels, [{**p, "erased": r["concept"]} for p in mine]


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
    p = merging.parser(__doc__, "results")
    p.add_argument("--methods", nargs="+", help="keep only these methods' rows, in this order (a part drawn for "
                                                "one table can give another table some of its rows)")
    args = merging.parse(p, argv, "merge_results")

    parts = {prefix: read_part(prefix) for prefix in args.inputs}
    per_prompt = {prefix: read_per_prompt(prefix) for prefix in args.inputs}
    with_counts = all(p is not None for p in per_prompt.values())
    if with_counts:
        for prefix, (part_rows, *_rest) in parts.items():
            attach_labels(prefix, part_rows, per_prompt[prefix])
    if args.methods:
        for prefix, (part_rows, *rest) in parts.items():
            parts[prefix] = ([r for r in part_rows if r["method"] in args.methods], *rest)
    rows, header = merge(parts)
    found = first_seen(r["method"] for r in rows)
    if args.methods and set(args.methods) - set(found):
        sys.exit(f"merge_results: --methods {' '.join(sorted(set(args.methods) - set(found)))}: in no input's table")
    methods = [m for m in args.methods if m in found] if args.methods else found
    concepts = first_seen(r["concept"] for r in rows)
    rows = [r for m in methods for r in rows if r["method"] == m] + average_rows(rows, methods)

    if with_counts:   # the merged averages' intervals are columns even where no part's table had them
        header += [f"{k}_{end}" for k in ("h_o", *ACCURACIES) for end in ("lo", "hi") if f"{k}_{end}" not in header]
        columns = list(per_prompt[args.inputs[0]][0].keys())
        io.write_csv(f"{args.out}_per_prompt.csv", columns,
                     [[p[c] for c in columns] for r in rows if "per_prompt" in r for p in r["per_prompt"]])
    io.write_csv(f"{args.out}.csv", header, [summary_cells(r, header) for r in rows])
    head = merging.provenance("merge_results", {prefix: part[2] for prefix, part in parts.items()}, args.out,
                              ["--methods", *args.methods] if args.methods else [])
    note = next(iter(parts.values()))[3]
    io.write_text(f"{args.out}.md",
                  f"# Erasure results\n\n{head}\n\n{note}\n\n{markdown_table(rows, concepts, methods)}\n"
                  f"## Remap scores\n\n{remap_table(rows, methods)}")
    print(f"merged {len(parts)} tables: {len(methods)} methods x {len(concepts)} concepts -> {args.out}.csv, .md")


if __name__ == "__main__":
    main()
