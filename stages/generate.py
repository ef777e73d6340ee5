"""Generate stage: N images per evaluation prompt for one method (and erased concept).

Images go to a cache directory beside the manifest, named by a hash of the edit and the generation
settings; finished images are skipped, so a killed run resumes where it stopped. Writes a manifest CSV
(id, concept, kind, prompt, seed, file) for the scorer. On CPU, --threads N draws with N one-thread
processes (erasure/generation.py). With --shard K/N a cluster job draws one shard of the set (config
`shards`); the same command without it then writes the manifest.

    python stages/generate.py --config config.yaml --method realera --concept heart \\
        --deltas outputs/miniworld/edit/realera/heart.safetensors --out outputs/miniworld/images/realera/heart.csv
"""
from erasure import cli, params
from erasure.generation import generate, select_prompts, set_erased


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
    p.add_argument("--shard", help="K/N: draw only shard K of N of the set (every N-th batch from batch K) and "
                                   "write its rows to --shard-out; a later run without --shard writes --out")
    p.add_argument("--shard-out", help="the shard's manifest CSV (with --shard)")
    args = p.parse_args()
    shard = parse_shard(args.shard, args.shard_out)
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, params.generate, args.method)
    g = prm["generate"]
    rows = select_prompts(cli.read_prompts(args), args.concept, args.associated_of, g["other_associated"], g["splits"])
    generate(prm, rows, args.deltas, args.lora, args.out, args.threads, f"{prm['method']}/{args.concept}",
             args.tokens, shard, args.shard_out, set_erased(prm.get("erase"), args.concept, args.associated_of))


def parse_shard(text, shard_out):
    if text is None:
        return None
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and int(n) >= 1 and shard_out):
        raise ValueError(f"--shard {text}: give K/N (e.g. 0/4) and --shard-out")
    return int(k), int(n)


if __name__ == "__main__":
    cli.run(main)
