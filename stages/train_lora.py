"""LoRA stage: prediction-noise alignment (RealEra Eq. 8/9) on top of the closed-form-edited UNet.

Writes pytorch_lora_weights.safetensors in the format StableDiffusionPipeline.load_lora_weights
reads (and UNet2DConditionModel.load_lora_adapter, for the mini world), plus a JSON sidecar.
Checkpoints every 20 steps and resumes from the last checkpoint.

    python stages/train_lora.py --config config.yaml --method realera --concept heart \\
        --deltas outputs/miniworld/edit/realera/heart.safetensors \\
        --embeddings outputs/miniworld/mine/paper/heart.safetensors \\
        --out outputs/miniworld/lora/realera/heart/pytorch_lora_weights.safetensors
"""
from erasure import cli, params
from erasure.lora import train_alignment


def main():
    p = cli.parser(__doc__)
    p.add_argument("--method", default=None)
    p.add_argument("--concept", default=None)
    p.add_argument("--deltas", required=True)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--out", required=True, help=".../pytorch_lora_weights.safetensors")
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, params.train_lora, args.method, args.concept)
    train_alignment(prm, args.deltas, args.embeddings, args.out, args.method)


if __name__ == "__main__":
    cli.run(main)
