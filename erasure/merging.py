"""What the merges of committed tables share (scripts/merge_results.py, merge_sepme.py, merge_robustness.py):
a table drawn in parts, one run each, is read back from results/ as PREFIX.csv and PREFIX.md and written
again as one table whose Markdown cites every part's regenerate command, then the merge's own."""
import argparse
import csv
import shlex
import sys
from pathlib import Path


def parser(doc: str, what: str) -> argparse.ArgumentParser:
    """The arguments every merge takes: the parts' prefixes and the output prefix."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help=f"{what} prefixes (PREFIX.csv and PREFIX.md)")
    p.add_argument("--out", required=True, help="output prefix: writes OUT.csv and OUT.md")
    return p


def parse(p: argparse.ArgumentParser, argv, script: str) -> argparse.Namespace:
    args = p.parse_args(argv)
    if len(set(args.inputs)) < len(args.inputs):
        sys.exit(f"{script}: an input is given twice; pass each results prefix once")
    return args


def read_table(prefix: str, script: str, what: str) -> tuple[list[str], list[dict], list[str]]:
    """A part's CSV header, its rows (as text) and its Markdown lines; a missing file stops the merge."""
    csv_path, md_path = Path(f"{prefix}.csv"), Path(f"{prefix}.md")
    for path in (csv_path, md_path):
        if not path.is_file():
            sys.exit(f"{script}: {path} not found (each input is a {what} prefix with .csv and .md)")
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    return reader.fieldnames, rows, md_path.read_text(encoding="utf-8").splitlines()


def line_with(lines: list[str], marker: str, start: bool = False) -> str:
    """The first Markdown line that starts with (or contains) `marker`, or ""."""
    return next((ln for ln in lines if (ln.startswith(marker) if start else marker in ln)), "")


def provenance(script: str, commands: dict[str, str], out: str, extra: list[str] = ()) -> str:
    """The merged table's header: the merge command, then each part's own regenerate command."""
    command = " ".join([f"python scripts/{script}.py", *map(shlex.quote, commands), "--out", shlex.quote(out),
                        *map(shlex.quote, extra)])
    sources = "\n".join(f"- `{prefix}`: {cmd.removeprefix('Regenerate: ')}" for prefix, cmd in commands.items())
    return f"Merged from the tables below, each with its own command, then: `{command}`\n\n{sources}"
