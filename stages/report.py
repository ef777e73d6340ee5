"""Report stage: summary.csv, a Markdown table in the papers' layout, PNG grids, one HTML page.

    python stages/report.py --config config.yaml --scores-dir outputs/miniworld/scores \\
        --remap-dir outputs/miniworld/remap --out outputs/miniworld/report

Reads scores/{method}/{concept}.csv (original: scores/original/all.csv), remap/{method}/{concept}.json
and, when COCO-30k is enabled, quality/{method}/{concept}.json (FID and CLIP score).
"""
import csv
import html
import json
from pathlib import Path

from PIL import Image, ImageDraw

from erasure import cli, io, params as stage_params
from erasure.config import slug
from erasure.report import (NUDENET_COLUMNS, REMAP, TEXT_COLUMNS, average_rows, fmt, markdown_table, metrics,
                            nudenet_counts, nudenet_table, quality_table, remap_metrics, remap_table, summary_cells)

COLUMNS = ["method", "concept", "acc_e", "acc_s", "acc_g", "h_o", "n_images", "acc_sg", *REMAP, "cs_e", "cs_s", "cs_g",
           "fid", "cs_coco"]
GRID_MAX_PROMPTS = 256   # I2P alone has 4,703 prompts: a grid of all of them would be 300,000 px tall


def read_scores(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def grid(score_rows, prompts, n):
    """Rows = prompts (with their text), columns = the first n images, border green when labelled the prompt's concept."""
    by_id = {}
    for r in score_rows:
        by_id.setdefault(int(r["id"]), []).append(r)
    cell, label_w = 66, 170
    prompts = prompts[:GRID_MAX_PROMPTS]
    canvas = Image.new("RGB", (label_w + n * cell, len(prompts) * cell), "white")
    draw = ImageDraw.Draw(canvas)
    for i, p in enumerate(prompts):
        draw.text((4, i * cell + 26), f"{p['prompt'][:26]} ({p['kind'][:5]})", fill="black")
        for j, r in enumerate(by_id.get(p["id"], [])[:n]):
            im = Image.open(r["file"]).convert("RGB").resize((60, 60), Image.NEAREST)
            colour = (40, 160, 60) if r["correct"] == "1" else (200, 60, 60)
            x, y = label_w + j * cell, i * cell
            draw.rectangle([x, y, x + 63, y + 63], outline=colour, width=2)
            canvas.paste(im, (x + 2, y + 2))
    return canvas


def main():
    p = cli.parser(__doc__)
    p.add_argument("--scores-dir", required=True)
    p.add_argument("--remap-dir", required=True)
    p.add_argument("--quality-dir", help="quality/{method}/{concept}.json (COCO-30k FID and CLIP score), if any")
    p.add_argument("--out", required=True)
    cli.add_prompts_arg(p)
    args = p.parse_args()
    prm = cli.stage_params(args, stage_params.report)
    out = Path(args.out)
    methods, concepts = prm["run_methods"], prm["erase"]
    prompts = [r for r in cli.read_prompts(args) if r["kind"] != "coco"]   # COCO captions: quality/ only

    # 1. Metrics per method and erased concept, then the averages.
    rows, grids, nudenet = [], [], []
    for method in methods:
        for concept in concepts:
            key = "all" if method == "original" else slug(concept)
            scores = read_scores(Path(args.scores_dir) / method / f"{key}.csv")
            row = {"method": method, "concept": concept, **metrics(scores, concept)}
            if method != "original":
                remap = json.loads((Path(args.remap_dir) / method / f"{key}.json").read_text())["scores"]
                row.update(remap_metrics(remap, prompts, concept))
            quality = Path(args.quality_dir) / method / f"{key}.json" if args.quality_dir else None
            if quality and quality.is_file():
                q = io.read_json(quality)
                row.update(fid=q["fid"] if q["fid"] is not None else float("nan"), cs_coco=q["clip_score"],
                           n_coco=q["images"])
            rows.append(row)
            if "nudenet_threshold" in prm:
                nudenet.append({"method": method, "concept": concept, **nudenet_counts(scores, concept)})
            if method != "original" or concept == concepts[0]:
                name = f"{method}_{key}.png"
                io.save_image(grid(scores, prompts, prm["grid_images"]), out / "grids" / name)
                grids.append((method, "(unedited)" if method == "original" else concept, name))
    rows += average_rows(rows, methods)

    # 2. summary.csv, Markdown, HTML.
    io.write_csv(out / "summary.csv", COLUMNS, [summary_cells(r, COLUMNS) for r in rows])
    note = (f"{prm['images_per_prompt']} images per prompt. Acc in %, from the scorer's argmax label. "
            "H_o = 3 / (1/(100-Acc_e) + 1/Acc_s + 1/(100-Acc_g)).\n")
    table = markdown_table(rows, concepts, methods)
    remaps = remap_table(rows, methods)
    if nudenet:  # RealEra Table 2: per-class NudeNet counts on the erased concept's I2P images
        remaps += ("\n## NudeNet detections on the associated (I2P) prompts\n\nImages in which NudeNet finds each "
                   f"exposed class at score >= {prm['nudenet_threshold']}.\n\n{nudenet_table(nudenet)}")
        io.write_csv(out / "nudenet.csv", ["method", "concept", *[c for c, _ in NUDENET_COLUMNS], "total", "n_images"],
                     [[r["method"], r["concept"], *[r[c] for c, _ in NUDENET_COLUMNS], r["total"], r["n_images"]]
                      for r in nudenet])
    if any("n_coco" in r for r in rows):   # RealEra Table 2's right half: general quality on COCO-30k
        remaps += ("\n## COCO-30k: FID and CLIP score\n\nImages of the COCO captions (prompt kind coco); FID against "
                   f"the reference folder's real images (clean-fid), CLIP score 100 cos(image, caption).\n\n"
                   f"{quality_table(rows)}")
    io.write_text(out / "table.md", f"# Erasure results\n\n{note}\n{table}\n## Remap scores\n\n{remaps}")
    io.write_text(out / "index.html", _html(note, rows, concepts, methods, grids))
    per_prompt = per_prompt_rows(args.scores_dir, methods, concepts, prompts)
    io.write_csv(out / "per_prompt.csv", ["method", "erased", "id", "concept", "kind", "prompt", "n", "acc"], per_prompt)
    cli.progress(f"report written to {out}")


def per_prompt_rows(scores_dir, methods, concepts, prompts):
    """Accuracy per method, erased concept and prompt (original: one row per prompt)."""
    out = []
    for method in methods:
        for concept in (["(none)"] if method == "original" else concepts):
            key = "all" if method == "original" else slug(concept)
            by_id = {}
            for r in read_scores(Path(scores_dir) / method / f"{key}.csv"):
                by_id.setdefault(int(r["id"]), []).append(int(r["correct"]))
            for p in prompts:
                hits = by_id.get(p["id"], [])
                acc = f"{100 * sum(hits) / len(hits):.2f}" if hits else ""
                out.append([method, concept, p["id"], p["concept"], p["kind"], p["prompt"], len(hits), acc])
    return out


def _html(note, rows, concepts, methods, grids):
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')) if c in TEXT_COLUMNS else fmt(r.get(c), 2))}</td>"
                                    for c in COLUMNS) + "</tr>" for r in rows)
    imgs = "".join(f"<h3>{html.escape(m)} / {html.escape(c)}</h3><img src='grids/{html.escape(n)}'>" for m, c, n in grids)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Erasure report</title>"
            f"<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style></head>"
            f"<body><h1>Erasure report</h1><p>{html.escape(note)}</p><table><tr>{head}</tr>{body}</table>"
            f"<h2>Image grids</h2><p>Green border: labelled as the prompt's concept.</p>{imgs}</body></html>\n")


if __name__ == "__main__":
    cli.run(main)
