"""Revival stage: fine-tune one method's model on a few images of its erased concept (erasure/revival.py).

Writes to --out-dir step_<k>.safetensors at each checkpoint step of attacks.revival (the revived model
as weight deltas from the unedited model, keyed by parameter name), prompts.csv (the pre-attack
prompts, which the generate stage draws with each step's model) and attack.json; resumes after a kill.

    python stages/revival.py --config config.yaml --method cf --concept heart \\
        --deltas outputs/miniworld/edit/cf/heart.safetensors --out-dir outputs/miniworld/attacks/revival/cf/heart
"""
from erasure import cli, params, revival


def main():
    p = cli.parser(__doc__)
    cli.add_attacked_model_args(p)
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, params.attack, "revival", args.method, args.concept)
    revival.run(prm, args.out_dir, args.deltas, args.lora)


if __name__ == "__main__":
    cli.run(main)
