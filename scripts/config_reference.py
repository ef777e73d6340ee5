"""Write docs/config.md, the config reference, from the schema's descriptions and defaults.

    .venv/bin/python scripts/config_reference.py          # rewrite docs/config.md
    .venv/bin/python scripts/config_reference.py --check  # exit 1 when docs/config.md is out of date

The schema (workflow/schemas/config.schema.yaml) is the one source of defaults; tests/test_config.py
fails when this page no longer matches it.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from erasure import io  # noqa: E402
from erasure.config import schema  # noqa: E402

DOC = ROOT / "docs" / "config.md"
HEADER = """# Config reference

Generated from `workflow/schemas/config.schema.yaml` by `scripts/config_reference.py`: edit the schema,
then rerun the script. `config.yaml` sets only what defines the default run; every key not set takes
the default below. A task config (`configs/<task>.yaml`) is merged over `config.yaml`, mappings key by
key, as `snakemake --configfile` does; a stage run alone takes the same files: `python stages/<stage>.py
--config configs/<task>.yaml [--config more.yaml]`.

| key | type | default | meaning |
|---|---|---|---|
"""


def type_of(spec):
    if "enum" in spec:
        return " | ".join(str(v) for v in spec["enum"])
    if "oneOf" in spec:
        return " or ".join(str(o.get("const", o.get("type"))) for o in spec["oneOf"])
    kind = spec.get("type", "")
    return " or ".join(kind) if isinstance(kind, list) else kind


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def rows(properties, prefix=""):
    """One table row per key, depth first; entries of a map (methods, resources) as <name>.key."""
    out = []
    for key, spec in properties.items():
        if not isinstance(spec, dict):
            continue
        name = f"{prefix}{key}"
        default = f"`{json.dumps(spec['default'])}`" if "default" in spec and spec.get("type") != "object" else ""
        out.append(f"| `{name}` | {cell(type_of(spec))} | {cell(default)} | {cell(spec.get('description', ''))} |")
        out += rows(spec.get("properties", {}), f"{name}.")
        entry = spec.get("additionalProperties")
        if isinstance(entry, dict):
            out += rows(entry.get("properties", {}), f"{name}.<name>.")
            for branch in entry.get("allOf", []):
                out += rows({k: v for k, v in branch["then"]["properties"].items() if k != "kind"}, f"{name}.<name>.")
    return out


def render():
    return HEADER + "\n".join(rows(schema()["properties"])) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only compare with docs/config.md")
    args = p.parse_args()
    if args.check:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != render():
            sys.exit(f"{DOC} is out of date: run .venv/bin/python scripts/config_reference.py")
        return
    io.write_text(DOC, render())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
