"""Quality stage: how well an edited model still draws everyday scenes. Over the images of the COCO-30k
captions (prompt kind coco) in one manifest: the mean CLIP score, 100 cos(image, its caption), with
open_clip (`scorer.clip_model`, `scorer.clip_pretrained`), and the FID against the statistics of real
COCO images (stages/fid_reference.py; clean-fid's Inception).

    python stages/quality.py --config configs/sd_explicit.yaml --manifest outputs/sd_explicit/images/uce/nudity.csv \\
        --reference outputs/sd_explicit/quality/reference.safetensors --out outputs/sd_explicit/quality/uce/nudity.json

Writes JSON: images, clip_score, fid (null without --reference), reference_images.
"""
import csv

import torch

from erasure import cli, io, params as stage_params, quality
from erasure.io import sidecar_path
from erasure.scoring import ClipScorer


def main():
    p = cli.parser(__doc__)
    p.add_argument("--manifest", required=True)
    p.add_argument("--reference", help="reference statistics (stages/fid_reference.py); omit for no FID")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, stage_params.quality)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    # 1. The images of the COCO captions in this image set.
    with open(args.manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "coco"]
    if not rows:
        raise ValueError(f"{args.manifest}: no images of COCO captions (kind coco); set coco.enabled in the config")
    paths, captions = [r["file"] for r in rows], [r["prompt"] for r in rows]

    # 2. CLIP score: each image against its own caption.
    clip = ClipScorer(prm["clip"]["model"], prm["clip"]["pretrained"])
    scores = clip.clip_scores(paths, captions)
    result = {"images": len(rows), "clip_score": sum(scores) / len(scores), "fid": None, "reference_images": None}
    cli.progress(f"quality: CLIP score {result['clip_score']:.2f} over {len(rows)} images")

    # 3. FID: Inception statistics of these images against the reference folder's.
    if args.reference:
        model = quality.inception(prm["coco"]["inception_dir"], device)
        stats = quality.statistics(quality.features(paths, model, prm["coco"]["batch_size"], device))
        result["fid"] = quality.fid(stats, quality.load_statistics(args.reference))
        result["reference_images"] = io.read_json(sidecar_path(args.reference))["images"]
        cli.progress(f"quality: FID {result['fid']:.2f} against {result['reference_images']} reference images")
    io.write_json(args.out, result)


if __name__ == "__main__":
    cli.run(main)
