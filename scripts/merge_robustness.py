"""Merge committed robustness tables drawn by several runs (one concept each, say) into one table.

    python scripts/merge_robustness.py results/miniworld/parts/robustness_heart \\
        results/miniworld/parts/robustness_crescent --out results/miniworld/robustness

Each input is what `snakemake robustness_results` writes (PREFIX.csv and PREFIX.md, and PREFIX_transfer.csv
and .md when the run replays inversion tokens across models). The merged table keeps every part's rows per
method, concept and attack; the rows a one-run table pools over its concepts (concept "all") are left out,
since revival's pooled figure needs each checkpoint's counts, which the tables do not keep. The merged
Markdown lists every part's regenerate command, then the merge command.
"""
import csv
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from erasure import io, merging  # noqa: E402
from erasure.robustness import COLUMNS, TRANSFER_COLUMNS, markdown, transfer_markdown  # noqa: E402

NUMBERS = ("pre_asr", "pre_asr_lo", "pre_asr_hi", "post_asr", "post_asr_lo", "post_asr_hi")


def read_part(prefix):
    """The part's per-concept rows, transfer rows (or None), regenerate line, ASR definition line and the
    revival column's last step."""
    _, rows, lines = merging.read_table(prefix, "merge_robustness", "robustness results")
    rows = [{**r, **{k: float(r[k]) for k in NUMBERS}} for r in rows if r["concept"] != "all"]
    transfer_path = Path(f"{prefix}_transfer.csv")
    transfer = None
    if transfer_path.is_file():
        with transfer_path.open(newline="", encoding="utf-8") as f:
            transfer = [{**r, **{k: float(r[k]) for k in ("post_asr", "post_asr_lo", "post_asr_hi")}}
                        for r in csv.DictReader(f)]
    step = re.search(r"ASR at step (\d+)", "\n".join(lines))
    return (rows, transfer, merging.line_with(lines, "Regenerate:", start=True),
            merging.line_with(lines, "Attack success rate", start=True), int(step.group(1)) if step else None)


def merge(parts):
    """Every part's rows, in order; a (method, concept, attack) in two parts, or parts with other image
    counts, attacks or revival steps, is an error: their numbers would not be comparable."""
    rows, seen = [], set()
    for prefix, (part_rows, _, _, _, _) in parts.items():
        for r in part_rows:
            key = (r["method"], r["concept"], r["attack"])
            if key in seen:
                sys.exit(f"merge_robustness: {' / '.join(key)} is in more than one input ({prefix}); pass each once")
            seen.add(key)
            rows.append(r)
    for what, index in (("ASR definitions (images per prompt)", 3), ("revival steps", 4)):
        if len({p[index] for p in parts.values()}) > 1:
            sys.exit(f"merge_robustness: the inputs differ in their {what}; merge only tables of one protocol")
    attacks = [list(dict.fromkeys(r["attack"] for r in p[0])) for p in parts.values()]
    if any(a != attacks[0] for a in attacks):
        sys.exit("merge_robustness: the inputs ran different attacks: " + "; ".join(" ".join(a) for a in attacks))
    if len({p[1] is None for p in parts.values()}) > 1:
        sys.exit("merge_robustness: some inputs have a transfer table and some do not")
    return rows, attacks[0]


def cells(row, columns):
    """A CSV row as the robustness stage writes it: rates with two decimals, everything else as read."""
    return [f"{row[c]:.2f}" if isinstance(row[c], float) else row[c] for c in columns]


def main(argv=None):
    args = merging.parse(merging.parser(__doc__, "robustness results"), argv, "merge_robustness")

    parts = {prefix: read_part(prefix) for prefix in args.inputs}
    rows, attacks = merge(parts)
    _, transfer, _, definition, last_step = next(iter(parts.values()))
    head = merging.provenance("merge_robustness", {prefix: part[2] for prefix, part in parts.items()}, args.out)
    head = f"{head}\n\n{definition}\n\n"
    io.write_csv(f"{args.out}.csv", COLUMNS, [cells(r, COLUMNS) for r in rows])
    io.write_text(f"{args.out}.md", head + markdown(rows, attacks, last_step))
    if transfer is not None:
        transfer = [r for part in parts.values() for r in part[1]]
        methods = list(dict.fromkeys(r["source"] for r in transfer))
        concepts = list(dict.fromkeys(r["concept"] for r in transfer))
        io.write_csv(f"{args.out}_transfer.csv", TRANSFER_COLUMNS, [cells(r, TRANSFER_COLUMNS) for r in transfer])
        io.write_text(f"{args.out}_transfer.md", head.replace(definition, "Inversion ASR (%) of tokens learned on one "
                      "model and drawn with another, 95% Wilson interval.") + transfer_markdown(transfer, methods, concepts))
    print(f"merged {len(parts)} robustness tables: {len(rows)} rows -> {args.out}.csv, .md")


if __name__ == "__main__":
    main()
