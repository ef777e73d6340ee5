"""Attack stage: try to bring an erased concept back on one method's model (erasure/attacks.py).

Writes the attack's artefact to --out-dir: prompts.csv (the prompts to draw, in the evaluation prompts'
format), attack.json (parameters and statistics) and, for inversion, tokens.safetensors (the learned
token embeddings). The generate stage draws them (--prompts prompts.csv --tokens tokens.safetensors) on
any model; inversion checkpoints every 50 steps (--checkpoint-every) and resumes after a kill.

    python stages/attack.py --config config.yaml --attack inversion --method cf --concept heart \\
        --deltas outputs/miniworld/edit/cf/heart.safetensors --out-dir outputs/miniworld/attacks/inversion/cf/heart
"""
from erasure import attack_kinds, attacks, cli, params


def main():
    p = cli.parser(__doc__)
    p.add_argument("--attack", required=True, choices=attack_kinds.PROMPT_ATTACKS)
    cli.add_attacked_model_args(p)
    p.add_argument("--checkpoint-every", type=int, default=attacks.CHECKPOINT_EVERY,
                   help="inversion steps between training checkpoints (not a parameter: the artefact is the same)")
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, params.attack, args.attack, args.method, args.concept)
    attacks.run(prm, args.out_dir, args.deltas, args.lora, args.checkpoint_every)


if __name__ == "__main__":
    cli.run(main)
