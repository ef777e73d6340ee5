"""Export stage: one method's erased model as a directory plain diffusers loads, with its model card.

The edit is merged into the UNet's weights; the run's metrics (--summary, the report's summary.csv or
a SepME set's sepme.csv) and attack success rates (--robustness) go into the card with their 95%
intervals. export.lora_rank > 0 also writes the edit as a LoRA over the base model (erasure/export.py).

    python stages/export.py --config config.yaml --method realera --concept heart \\
        --deltas outputs/miniworld/edit/realera/heart.safetensors --lora outputs/miniworld/lora/realera/heart \\
        --summary outputs/miniworld/report/summary.csv --out outputs/miniworld/export/realera/heart
"""
import shlex
import sys
from pathlib import Path

from erasure import cli, params
from erasure.edits import LORA_FILE
from erasure.export import export
from erasure.model_card import model_card, read_rows


def main():
    p = cli.parser(__doc__)
    p.add_argument("--method", required=True, help="method name (set_<set> for a SepME set)")
    p.add_argument("--concept", required=True, help="erased concept (slug); a SepME set's all|restore|joint")
    p.add_argument("--deltas", help="weight deltas (.safetensors)")
    p.add_argument("--lora", help="LoRA directory (pytorch_lora_weights.safetensors)")
    p.add_argument("--summary", help="the run's metrics CSV, for the card (without it: not evaluated)")
    p.add_argument("--robustness", help="the run's robustness.csv, for the card's attack table")
    p.add_argument("--command", default="", help="the command that made the export, cited in the card")
    p.add_argument("--out", required=True, help="the export directory (replaced whole)")
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, params.export, args.method, args.concept)
    for path in (args.deltas, args.summary, args.robustness):
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file (check the path passed to stages/export.py)")
    if args.lora and not (Path(args.lora) / LORA_FILE).is_file():
        raise FileNotFoundError(f"--lora {args.lora}: no {LORA_FILE} in it (the train_lora stage writes it)")
    summary, attacks = read_rows(args.summary), read_rows(args.robustness)
    edit_files = [f for f in (args.deltas, args.lora and str(Path(args.lora) / LORA_FILE)) if f]
    command = args.command or shlex.join(["python", "stages/export.py", *sys.argv[1:]])
    export(prm, args.deltas, args.lora, args.out,
           lambda fit: model_card(prm, summary, attacks, edit_files, fit, command), progress=cli.progress)
    cli.progress(f"export: {args.out} written")


if __name__ == "__main__":
    cli.run(main)
