"""Report stage: summary.csv, a Markdown table in the papers' layout, PNG grids, one HTML page.

    python stages/report.py --config config.yaml --scores-dir outputs/miniworld/scores \\
        --remap-dir outputs/miniworld/remap --out outputs/miniworld/report

Reads scores/{method}/{concept}.csv (original: scores/original/all.csv), remap/{method}/{concept}.json
and, when COCO-30k is enabled, quality/{method}/{concept}.json (FID and CLIP score).
"""
from erasure import cli, params
from erasure.report import write_report


def main():
    p = cli.parser(__doc__)
    p.add_argument("--scores-dir", required=True)
    p.add_argument("--remap-dir", required=True)
    p.add_argument("--quality-dir", help="quality/{method}/{concept}.json (COCO-30k FID and CLIP score), if any")
    p.add_argument("--out", required=True)
    cli.add_prompts_arg(p)
    args = p.parse_args()
    prm = cli.stage_params(args, params.report)
    write_report(prm, cli.read_prompts(args), args.scores_dir, args.remap_dir, args.quality_dir, args.out)
    cli.progress(f"report written to {args.out}")


if __name__ == "__main__":
    cli.run(main)
