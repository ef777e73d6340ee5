"""Pretrain stage: train the mini world from scratch (the UNet, then the oracle) and write its card.

    python stages/pretrain.py --config config.yaml --out weights/miniworld [--part all|unet|oracle] [--threads 1]

Deterministic for a seed on CPU; the UNet checkpoints and resumes. Writes unet.safetensors,
oracle.safetensors and card.json (training config, steps, wall time, final loss, oracle accuracy).
The default pipeline uses the committed weights in weights/miniworld and never retrains.
"""
import json
from pathlib import Path

from erasure import cli, io, params
from erasure.miniworld import build_unet
from erasure.pretrain import train_oracle_stage, train_unet
from erasure.text import MiniLMEncoder
from safetensors.torch import load_file


def main():
    p = cli.parser(__doc__)
    p.add_argument("--out", required=True, help="weights directory")
    p.add_argument("--part", choices=["all", "unet", "oracle"], default="all")
    args = p.parse_args()
    cli.set_threads(args.threads)
    settings = cli.stage_params(args, params.pretrain)   # {"unet": {...}, "oracle": {...}}
    out = Path(args.out)
    card_path = out / "card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    encoder = MiniLMEncoder()

    # 1. The text-conditional UNet.
    if args.part in ("all", "unet"):
        card["unet"] = train_unet(encoder, out, settings["unet"], progress=cli.progress)
        io.write_json(card_path, card)

    # 2. The oracle, trained on renders degraded by that UNet.
    if args.part in ("all", "oracle"):
        unet = build_unet()
        unet.load_state_dict(load_file(out / "unet.safetensors"))
        card["oracle"] = train_oracle_stage(unet.eval(), encoder, out, settings["oracle"], settings["unet"],
                                           progress=cli.progress)
        io.write_json(card_path, card)
    cli.progress(f"pretrain done: {card_path}")


if __name__ == "__main__":
    cli.run(main)
