"""Generate stage: N images per evaluation prompt for one method (and erased concept).

Images go to a cache directory beside the manifest, named by a hash of the edit and the generation
settings; finished images are skipped, so a killed run resumes where it stopped. Writes a manifest CSV
(id, concept, kind, prompt, seed, file) for the scorer. On CPU, --threads N draws with N one-thread
processes (erasure/generation.py).

    python stages/generate.py --config config.yaml --method realera --concept heart \\
        --deltas outputs/miniworld/edit/realera/heart.safetensors --out outputs/miniworld/images/realera/heart.csv
"""
from erasure import cli, params
from erasure.generation import generate, select_prompts


def main():
    p = cli.parser(__doc__)
    p.add_argument("--method", help="method name (needed with --config)")
    p.add_argument("--concept", default="all", help="erased concept (slug); 'all' for the unedited model")
    p.add_argument("--deltas", help="closed-form weight deltas (.safetensors)")
    p.add_argument("--lora", help="LoRA directory (pytorch_lora_weights.safetensors)")
    p.add_argument("--tokens", help="an attack's placeholder tokens (.safetensors) its prompts use")
    p.add_argument("--associated-of", action="append",
                   help="draw associated prompts only of this concept (repeatable); without it and with "
                        "generate.other_associated false, only --concept's")
    cli.add_prompts_arg(p)
    p.add_argument("--out", required=True, help="manifest CSV; images go to a cache directory beside it")
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, params.generate, args.method)
    g = prm["generate"]
    rows = select_prompts(cli.read_prompts(args), args.concept, args.associated_of, g["other_associated"], g["splits"])
    generate(prm, rows, args.deltas, args.lora, args.out, args.threads, f"{prm['method']}/{args.concept}",
             args.tokens)


if __name__ == "__main__":
    cli.run(main)
