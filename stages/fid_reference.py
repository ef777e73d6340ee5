"""FID reference stage: Inception statistics of a folder of real images (COCO val2014), computed once
and shared by every method's FID (erasure/quality.py).

    python stages/fid_reference.py --config configs/sd_explicit.yaml --out outputs/sd_explicit/quality/reference.safetensors

Writes mu and sigma (float64, safetensors) and a JSON sidecar (folder, image count, settings).
"""
import torch

from erasure import cli, params as stage_params, quality


def main():
    p = cli.parser(__doc__)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, stage_params.fid_reference)
    coco = prm["coco"]
    device = "cuda" if torch.cuda.is_available() else "cpu"

    # 1. Every image of the reference folder (the folder is checked before the model loads).
    files = quality.folder_images(coco["reference_dir"])
    model = quality.inception(coco["inception_dir"], device)
    cli.progress(f"fid reference: {len(files)} images in {coco['reference_dir']}")

    # 2. Their features -> mean and covariance.
    stats = quality.statistics(quality.features(files, model, coco["batch_size"], device))
    quality.save_statistics(stats, args.out, {**prm, "images": len(files)})
    cli.progress(f"fid reference: statistics of {len(files)} images -> {args.out}")


if __name__ == "__main__":
    cli.run(main)
