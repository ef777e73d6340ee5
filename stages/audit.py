"""Audit an embedding set: what mining asked for, what it accepted, and where the samples landed.

    python stages/audit.py --embeddings outputs/miniworld/mine/paper/heart.safetensors [--out DIR]
        [--bank-prompts "a heart" "a valentine" ...] [--config config.yaml]

Prints (and writes to DIR/audit.md) the audit of erasure/audit.py; the prompt bank is the config's
evaluation prompts and training names, plus --bank-prompts.
"""
import argparse
from pathlib import Path

from erasure import cli
from erasure.audit import audit


def config_bank(config_paths):
    if not config_paths:
        return []
    from erasure.config import load_config
    from erasure.prompts import prompt_bank, prompt_table
    config = load_config(config_paths)
    return [r["prompt"] for r in prompt_table(config)] + prompt_bank(config)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--out", help="directory for audit.md and projection.png (default: beside the set)")
    p.add_argument("--config", action="append",
                   help="pipeline config (repeatable, merged over config.yaml): its evaluation prompts and training "
                        "names form the bank")
    p.add_argument("--bank-prompts", nargs="*", default=[], help="extra prompts to compare mined samples with")
    p.add_argument("--sample", type=int, default=5, help="mined neighbours whose nearest prompts are listed")
    args = p.parse_args()
    out = args.out or Path(args.embeddings).parent / f"{Path(args.embeddings).stem}_audit"
    bank = list(dict.fromkeys(args.bank_prompts + config_bank(args.config)))
    print(audit(args.embeddings, out, bank, args.sample))


if __name__ == "__main__":
    cli.run(main)
