"""How the mini-world model draws a prompt under other sampler settings, as the oracle sees it.

    python scripts/sampler_check.py "a star" "a cross" --n 100 --settings 25:5:1 10:5:0:dpmpp_2m --grid-dir /tmp

For each prompt and each STEPS:GUIDANCE[:ETA[:SAMPLER]] setting (ETA defaults to 0, SAMPLER to the
world's DDIM; else a generate.sampler name, whose ETA must be 0): the oracle's label counts
over images with seeds 0..n-1, and (with --grid-dir) an 8x8 grid of the first 64 images of the first
setting, to check the labels by eye. Used to tell a model that cannot draw a concept from an oracle
that misreads it.
"""
import argparse
import sys
from collections import Counter
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from erasure import io  # noqa: E402
from erasure.io import slug  # noqa: E402
from erasure.oracle import LABELS, classify  # noqa: E402
from erasure.sampling import sample, solver  # noqa: E402
from erasure.scoring import OracleScorer  # noqa: E402
from erasure.world import load_miniworld  # noqa: E402


def setting(text):
    parts = text.split(":")
    eta = float(parts[2]) if len(parts) > 2 else 0.0
    return int(parts[0]), float(parts[1]), eta, (parts[3] if len(parts) > 3 else None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prompts", nargs="+")
    p.add_argument("--weights", default="weights/miniworld")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--settings", nargs="+", type=setting, default=[(25, 5.0, 1.0)],
                   help="STEPS:GUIDANCE[:ETA[:SAMPLER]] (default 25:5:1, the mini world's default)")
    p.add_argument("--grid-dir", help="write <prompt>.png grids here")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    world = load_miniworld(args.weights)
    oracle = OracleScorer(args.weights).model
    null = world.null_embedding()
    for prompt in args.prompts:
        cond = world.encoder.encode([prompt])[0].expand(args.n, -1, -1)
        for i, (steps, guidance, eta, sampler) in enumerate(args.settings):
            latents = sample(world.unet, solver(world.make_scheduler(), sampler), cond, null, list(range(args.n)),
                             world.latent_shape, steps, guidance, eta)
            images = world.decode(latents)
            labels, _ = classify(oracle, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1)
            counts = Counter(LABELS[j] for j in labels.tolist())
            print(f"{prompt!r} steps={steps} guidance={guidance} eta={eta} sampler={sampler or 'ddim'}: " +
                  ", ".join(f"{k} {100 * v / args.n:.0f}%" for k, v in counts.most_common()), flush=True)
            if args.grid_dir and i == 0 and args.n >= 64:
                grid = images[:64].reshape(8, 8, 32, 32, 3).transpose(0, 2, 1, 3, 4).reshape(256, 256, 3)
                io.save_image(Image.fromarray(grid).resize((512, 512), Image.NEAREST),
                              Path(args.grid_dir) / f"{slug(prompt)}.png")


if __name__ == "__main__":
    main()
