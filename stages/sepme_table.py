"""The SepME table: sets of concepts erased jointly with separable increments, one concept restored,
and the same sets erased by one joint closed-form solve (not separable).

Per set, model and concept: Acc_e (the concept's canonical prompt drawn as the concept), Acc_g (its
held-out associated prompts), Acc_s (canonical prompts of concepts outside the set), beside the
original model's Acc for the same prompts. For a restored concept, Acc_e should come back to the
original's and the set's other concepts should stay erased.

    snakemake --cores 2 sepme_table --configfile configs/miniworld_sepme.yaml
"""
from erasure import cli, params
from erasure.report import write_sepme_table


def main():
    p = cli.parser(__doc__)
    p.add_argument("--scores-dir", required=True)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    args = p.parse_args()
    prm = cli.stage_params(args, params.sepme_table)
    table = write_sepme_table(prm, args.scores_dir, args.out_csv, args.out_md)
    cli.progress(f"SepME table: {len(table)} rows")


if __name__ == "__main__":
    cli.run(main)
