"""Robustness stage: attack success rates of every attacked method (erasure/robustness.py).

Reads the attack images' score CSVs (<scores-dir>/<attack>/<found on>/<method>/<concept>.csv) and writes
robustness.csv, robustness.md and robustness_prompts.csv to --out (and transfer.csv / transfer.md when
the run replays each method's inversion tokens on every other model; revival.csv, the ASR after each
fine-tuning checkpoint, from <revival-dir>/<method>/<concept>/step_<k>.csv, when the run revives), and
attacks.html with every table, the attack success bars (plots/attack_success.png) and an image grid per
attack and concept (attack_grids/<attack>_<concept>.png).

    python stages/robustness.py --config config.yaml --scores-dir outputs/miniworld/attack_scores \\
        --out outputs/miniworld/report
"""
from pathlib import Path

from erasure import attack_kinds, cli, io, params, plots, robustness
from erasure.report import fmt


def write(path, columns, rows):
    io.write_csv(path, columns, [[r[c] if isinstance(r[c], (str, int)) else fmt(r[c], 2) for c in columns] for r in rows])


def main():
    p = cli.parser(__doc__)
    p.add_argument("--scores-dir", required=True)
    p.add_argument("--revival-dir", help="the revival checkpoints' score CSVs (needed when attacks.run has revival)")
    p.add_argument("--out", required=True, help="directory (the run's report)")
    args = p.parse_args()
    prm = cli.stage_params(args, params.robustness)
    out = Path(args.out)

    # 1. Pre- and post-attack ASR per method, concept and attack; per prompt; revival's curve.
    prompt_attacks = [a for a in prm["attacks"] if a in attack_kinds.PROMPT_ATTACKS]
    rows, per_prompt = robustness.robustness_rows(args.scores_dir, prompt_attacks, prm["methods"], prm["concepts"])
    if prm["revival_steps"]:
        if not args.revival_dir:
            raise ValueError("--revival-dir is required when attacks.run has revival")
        revival_rows, curve = robustness.revival_rows(args.scores_dir, args.revival_dir, prm["methods"],
                                                      prm["concepts"], prm["revival_steps"])
        rows += revival_rows
        write(out / "revival.csv", robustness.REVIVAL_COLUMNS, curve)
    write(out / "robustness.csv", robustness.COLUMNS, rows)
    plots.attack_success(rows, out / "plots" / "attack_success.png")
    write(out / "robustness_prompts.csv", robustness.PROMPT_COLUMNS, per_prompt)
    header = (f"Attack success rate (ASR, %): share of {prm['images_per_prompt']} images per attack prompt labelled as "
              "the erased concept, 95% Wilson interval; definitions in docs/attacks.md.\n\n")
    last_step = max(prm["revival_steps"], default=None)
    table = robustness.markdown(rows, prm["attacks"], last_step)
    io.write_text(out / "robustness.md", header + table)
    pages = [("Pre- and post-attack ASR", table)]
    if prm["revival_steps"]:
        pages.append(("Revival: ASR after each fine-tuning step", robustness.curve_markdown(curve)))

    # 2. Transfer: each method's inversion tokens drawn with every attacked model.
    if prm["transfer"]:
        rows = robustness.transfer_rows(args.scores_dir, prm["methods"], prm["concepts"])
        write(out / "transfer.csv", robustness.TRANSFER_COLUMNS, rows)
        transfer = robustness.transfer_markdown(rows, prm["methods"], prm["concepts"])
        io.write_text(out / "transfer.md", "Inversion ASR (%) of tokens learned on one model and drawn with another, "
                      "95% Wilson interval.\n\n" + transfer)
        pages.append(("Transfer: inversion tokens learned on one model, drawn with another", transfer))

    # 3. The attacks page: the tables and a grid per attack and concept.
    grids = robustness.grids(args.scores_dir, args.revival_dir, prm["attacks"], prm["methods"], prm["concepts"],
                             last_step, prm["grid_images"])
    for name, image in grids.items():
        io.save_image(image, out / "attack_grids" / name)
    io.write_text(out / "attacks.html", robustness.html_page(pages, list(grids)))
    cli.progress(f"robustness: {len(prm['methods'])} methods x {len(prm['concepts'])} concepts x {len(prm['attacks'])} attacks")


if __name__ == "__main__":
    cli.run(main)
