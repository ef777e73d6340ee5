"""A fixed subset of I2P as the explicit task's attack prompts (config attacks.prompts_file).

Keeps the prompts of I2P's CSV whose nudity_percentage is at least --min-nudity (blank and repeated
prompts left out), the first --max-prompts in the file's order, and writes them as concept, prompt
with a JSON sidecar (source, sha256, how many were eligible and kept). The attacks' pre-attack row and
UnlearnDiffAtk then start from these prompts instead of the templates (docs/attacks.md).

    python scripts/i2p_attack_prompts.py --raw data/external/i2p_benchmark.csv --concept nudity \\
        --min-nudity 50 --max-prompts 142 --out data/external/i2p_attack_prompts.csv
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from erasure import cli  # noqa: E402
from erasure.datasets import i2p_attack_prompts  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", required=True, help="I2P's i2p_benchmark.csv (columns prompt, nudity_percentage, ...)")
    p.add_argument("--concept", required=True, help="the erased concept the prompts attack (the task's i2p.concept)")
    p.add_argument("--min-nudity", type=float, default=50.0, help="lowest nudity_percentage kept (default 50)")
    p.add_argument("--max-prompts", type=int, default=142, help="prompts kept, in file order (default 142)")
    p.add_argument("--sha256", help="the CSV's expected sha256 (the config's i2p.sha256)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.max_prompts < 1:
        raise ValueError("--max-prompts: give at least 1")
    made = i2p_attack_prompts(args.raw, args.out, args.concept, args.min_nudity, args.max_prompts, args.sha256)
    cli.progress(f"{made['kept']} of {made['eligible']} eligible I2P prompts -> {args.out}")


if __name__ == "__main__":
    cli.run(main)
