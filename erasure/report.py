"""Every table, grid and page the pipeline writes: the run's report (summary.csv, the papers' Markdown
table, per-prompt accuracy, image grids, one HTML page), the SepME table, the original-model table and
the copies under results/. The numbers come from erasure.metrics."""
import csv
import html
import json
import math
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw

from . import io
from .io import slug
from .metrics import (NUDENET_COLUMNS, REMAP, accuracy, average_rows, concept_rows, harmonic_overall, metrics,
                      nudenet_counts, remap_metrics)

TEXT_COLUMNS = ("method", "concept", "n_images")
COLUMNS = ["method", "concept", "acc_e", "acc_s", "acc_g", "h_o", "n_images", "acc_sg", *REMAP, "cs_e", "cs_s", "cs_g",
           "fid", "cs_coco"]
GRID_MAX_PROMPTS = 256   # I2P alone has 4,703 prompts: a grid of all of them would be 300,000 px tall
import math

def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def summary_cells(row: dict, columns: list[str]) -> list:
    """One summary.csv row: text columns as they are, numbers with 4 decimals ("-" when missing)."""
    return [row.get(c, "") if c in TEXT_COLUMNS else fmt(row.get(c), 4) for c in columns]


def markdown_table(rows: list[dict], concepts: list[str], methods: list[str]) -> str:
    """RealEra Table 1 layout: one row per method; per concept Acc_e, Acc_s, Acc_g, H_o; then the average."""
    by = {(r["method"], r["concept"]): r for r in rows}
    blocks = list(concepts) + ["average"]
    head = ["Method"] + [f"{b} {m}" for b in blocks for m in ("Acc_e↓", "Acc_s↑", "Acc_g↓", "H_o↑")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        cells = [method]
        for b in blocks:
            r = by.get((method, b))
            cells += [fmt(r[k]) if r else "-" for k in ("acc_e", "acc_s", "acc_g", "h_o")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def remap_table(rows: list[dict], methods: list[str]) -> str:
    lines = ["| Method | concept | remap erased ↑ | remap associated ↑ | remap others ↓ | remap others' associated ↓ |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if r["method"] in methods and r["method"] != "original" and r["concept"] != "average":
            lines.append(f"| {r['method']} | {r['concept']} | " + " | ".join(fmt(r.get(k), 3) for k in REMAP) + " |")
    return "\n".join(lines) + "\n"


def quality_table(rows: list[dict]) -> str:
    """FID and CLIP score on COCO-30k per method and erased concept (rows with cs_coco)."""
    lines = ["| Method | concept | images | FID↓ | CLIP score↑ |", "|---|---|---|---|---|"]
    for r in rows:
        if "n_coco" in r:
            lines.append(f"| {r['method']} | {r['concept']} | {r['n_coco']} | {fmt(r['fid'], 2)} | {fmt(r['cs_coco'], 2)} |")
    return "\n".join(lines) + "\n"


def nudenet_table(rows: list[dict]) -> str:
    """rows: dicts with method, concept and nudenet_counts' keys."""
    head = ["Method", "concept"] + [name for _, name in NUDENET_COLUMNS] + ["Total↓", "images"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], r["concept"]] + [str(r[c]) for c, _ in NUDENET_COLUMNS] + [str(r["total"]),
                                                                                      str(r["n_images"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_scores(path: str | Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def grid(score_rows: list[dict], prompts: list[dict], n: int) -> Image.Image:
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


def write_report(prm: dict, prompts: list[dict], scores_dir: str | Path, remap_dir: str | Path,
                 quality_dir: str | Path | None, out: str | Path) -> None:
    """The run's report under `out`: summary.csv, table.md, per_prompt.csv, grids/*.png, index.html.
    scores/{method}/{concept}.csv (original: all.csv), remap/{method}/{concept}.json and, when COCO-30k
    is enabled, quality/{method}/{concept}.json are read from their directories."""
    out = Path(out)
    methods, concepts = prm["run_methods"], prm["erase"]
    prompts = [r for r in prompts if r["kind"] != "coco"]   # COCO captions: quality/ only

    # 1. Metrics per method and erased concept, then the averages.
    rows, grids, nudenet = [], [], []
    for method in methods:
        for concept in concepts:
            key = "all" if method == "original" else slug(concept)
            scores = read_scores(Path(scores_dir) / method / f"{key}.csv")
            row = {"method": method, "concept": concept, **metrics(scores, concept)}
            if method != "original":
                remap = json.loads((Path(remap_dir) / method / f"{key}.json").read_text())["scores"]
                row.update(remap_metrics(remap, prompts, concept))
            quality = Path(quality_dir) / method / f"{key}.json" if quality_dir else None
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
    per_prompt = per_prompt_rows(scores_dir, methods, concepts, prompts)
    io.write_csv(out / "per_prompt.csv", ["method", "erased", "id", "concept", "kind", "prompt", "n", "acc"], per_prompt)


def per_prompt_rows(scores_dir: str | Path, methods: list[str], concepts: list[str], prompts: list[dict]) -> list[list]:
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


SEPME_COLUMNS = ["set", "k", "model", "concept", "role", "acc_e", "acc_g", "acc_s", "h_o",
                 "original_acc_e", "original_acc_g", "n_images"]


def write_sepme_table(prm: dict, scores_dir: str | Path, out_csv: str | Path, out_md: str | Path) -> list[dict]:
    """The SepME table: per set, model (all / joint / restore) and concept, Acc_e, Acc_g and Acc_s
    (canonical prompts of the concepts outside the set) beside the original model's Acc; returns the rows."""
    scores_dir = Path(scores_dir)
    original = read_scores(scores_dir / "original" / "all.csv")

    table = []
    for name, members in prm["sets"].items():
        outside = sorted({r["concept"] for r in original} - set(members))
        models = ["all"] + (["joint"] + (["restore"] if prm["restore"] else []) if len(members) > 1 else [])
        for model in models:
            scores = read_scores(scores_dir / f"set_{name}" / f"{model}.csv")
            acc_s = accuracy([r for r in scores if r["concept"] in outside and r["kind"] == "erase"])
            for concept in members:
                restored = model == "restore" and concept == prm["restore"]
                acc_e = accuracy(concept_rows(scores, concept, "erase"))
                acc_g = accuracy(concept_rows(scores, concept, "associated"))
                table.append({"set": name, "k": len(members), "model": model, "concept": concept,
                              "role": "restored" if restored else "erased", "acc_e": acc_e, "acc_g": acc_g,
                              "acc_s": acc_s, "h_o": float("nan") if restored else harmonic_overall(acc_e, acc_s, acc_g),
                              "original_acc_e": accuracy(concept_rows(original, concept, "erase")),
                              "original_acc_g": accuracy(concept_rows(original, concept, "associated")),
                              "n_images": len(scores)})

    io.write_csv(out_csv, SEPME_COLUMNS, [[r[c] if c in ("set", "k", "model", "concept", "role", "n_images")
                                           else fmt(r[c], 2) for c in SEPME_COLUMNS] for r in table])
    md = ["# SepME on the mini world: separable increments, restoration, and the joint solve\n",
          f"{prm['images_per_prompt']} images per prompt; oracle accuracy in %. `all`: every increment of the set; "
          f"`restore`: all but {prm['restore']}'s (no retraining); `joint`: one closed-form solve for the whole "
          "set (not separable). Acc_s: canonical prompts of the concepts outside the set.\n",
          "| set | k | model | concept | role | Acc_e↓ (original) | Acc_g↓ (original) | Acc_s↑ | H_o↑ |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        md.append(f"| {r['set']} | {r['k']} | {r['model']} | {r['concept']} | {r['role']} | "
                  f"{fmt(r['acc_e'])} ({fmt(r['original_acc_e'])}) | {fmt(r['acc_g'])} ({fmt(r['original_acc_g'])}) | "
                  f"{fmt(r['acc_s'])} | {fmt(r['h_o'])} |")
    io.write_text(out_md, "\n".join(md) + "\n")
    return table


def write_original_table(per_prompt: str | Path, weights: str | Path, command: str, out_csv: str | Path,
                         out_md: str | Path) -> None:
    """The original-model table: oracle accuracy per concept for its canonical prompt and each held-out
    associated prompt, citing the weights' card."""
    with open(per_prompt, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == "original"]
    by_concept = defaultdict(lambda: {"erase": [], "associated": []})
    for r in rows:
        if r["kind"] in ("erase", "associated"):
            by_concept[r["concept"]][r["kind"]].append(r)

    table = []
    md = ["# Mini world: the original model\n", f"Regenerate: `{command}`\n",
          "Oracle accuracy (%) over images of each prompt (argmax label; a reject counts as wrong).\n",
          "| concept | canonical prompt | Acc (canonical) | held-out associated prompts: Acc each | mean |",
          "|---|---|---|---|---|"]
    for concept, kinds in by_concept.items():
        canon = kinds["erase"][0]
        assoc = kinds["associated"]
        mean = sum(float(a["acc"]) for a in assoc) / len(assoc) if assoc else float("nan")
        detail = "; ".join(f"{a['prompt']}: {float(a['acc']):.1f}" for a in assoc)
        table.append([concept, canon["prompt"], canon["acc"], canon["n"], f"{mean:.2f}", len(assoc), detail])
        md.append(f"| {concept} | {canon['prompt']} | {float(canon['acc']):.1f} | {detail} | {mean:.1f} |")
    card = Path(weights) / "card.json"
    if card.is_file():
        c = json.loads(card.read_text())
        md.append(f"\nWeights: `{weights}` (UNet {c['unet']['config']['steps']} steps, final loss "
                  f"{c['unet']['final_loss']:.4f}; oracle {c['oracle']['metrics']['fresh_renders_acc']}% on fresh renders, "
                  f"{c['oracle']['metrics']['degraded_renders_acc']}% on model-degraded renders).")
    io.write_csv(out_csv, ["concept", "canonical_prompt", "canonical_acc", "n_per_prompt", "associated_acc_mean",
                           "n_associated_prompts", "associated_detail"], table)
    io.write_text(out_md, "\n".join(md) + "\n")


def copy_results(csv_path: str | Path, md_path: str | Path, command: str, out_csv: str | Path,
                 out_md: str | Path) -> None:
    """A run's tables copied under results/, the .md with the command that regenerates them."""
    title, _, body = Path(md_path).read_text(encoding="utf-8").partition("\n")
    io.write_text(out_md, f"{title}\n\nRegenerate: `{command}`\n{body}")
    io.write_text(out_csv, Path(csv_path).read_text(encoding="utf-8"))
