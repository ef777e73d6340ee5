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

from . import io, plots
import numpy as np

from .frontier import REFERENCE, choice_markdown, claim_markdown, frontier_rows, write_frontier
from .intervals import percentile_interval, prompt_replicates, wilson
from .io import slug
from .metrics import (N_BOOTSTRAP, NUDENET_COLUMNS, REMAP, WITH_INTERVALS, accuracy, average_rows, concept_rows,
                      count_labels, harmonic_overall, harmonic_overall_array, metrics, nudenet_counts, remap_metrics)

TEXT_COLUMNS = ("method", "concept", "n_images")
# The papers' four first, then Acc_sg and the tuning/report halves of the held-out prompts, then every
# 95% interval (<metric>_lo, <metric>_hi), then the remap proxy and the CLIP/COCO columns.
COLUMNS = ["method", "concept", "acc_e", "acc_s", "acc_g", "h_o", "n_images", "acc_sg", "acc_g_tuning", "acc_g_report",
           "acc_sg_tuning", "acc_sg_report", *[f"{m}_{end}" for m in WITH_INTERVALS for end in ("lo", "hi")],
           *REMAP, "cs_e", "cs_s", "cs_g", "fid", "cs_coco"]
GRID_MAX_PROMPTS = 256   # I2P alone has 4,703 prompts: a grid of all of them would be 300,000 px tall

def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def summary_cells(row: dict, columns: list[str]) -> list:
    """One summary.csv row: text columns as they are, numbers with 4 decimals ("-" when missing)."""
    return [row.get(c, "") if c in TEXT_COLUMNS else fmt(row.get(c), 4) for c in columns]


def with_interval(row: dict | None, key: str) -> str:
    """"12.3 [8.1, 17.9]": the value and its 95% interval when the row has one."""
    if not row:
        return "-"
    if f"{key}_lo" in row and not math.isnan(row.get(key, float("nan"))):
        return f"{fmt(row[key])} [{fmt(row[key + '_lo'])}, {fmt(row[key + '_hi'])}]"
    return fmt(row.get(key))


def markdown_table(rows: list[dict], concepts: list[str], methods: list[str]) -> str:
    """RealEra Table 1 layout: one row per method; per concept Acc_e, Acc_s, Acc_g, H_o; then the
    average; then Acc_sg and the average's Acc_g and Acc_sg on the tuning and report halves."""
    by = {(r["method"], r["concept"]): r for r in rows}
    blocks = list(concepts) + ["average"]
    extra = [("acc_sg", "Acc_sg↑"), ("acc_g_tuning", "Acc_g↓ tuning"), ("acc_g_report", "Acc_g↓ report"),
             ("acc_sg_tuning", "Acc_sg↑ tuning"), ("acc_sg_report", "Acc_sg↑ report")]
    head = (["Method"] + [f"{b} {m}" for b in blocks for m in ("Acc_e↓", "Acc_s↑", "Acc_g↓", "H_o↑")]
            + [f"average {name}" for _, name in extra])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        cells = [method]
        for b in blocks:
            cells += [with_interval(by.get((method, b)), k) for k in ("acc_e", "acc_s", "acc_g", "h_o")]
        cells += [with_interval(by.get((method, "average")), k) for k, _ in extra]
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
    return image_rows([(f"{p['prompt'][:26]} ({p['kind'][:5]})", by_id.get(p["id"], []))
                       for p in prompts[:GRID_MAX_PROMPTS]], n)


def image_rows(rows: list[tuple[str, list[dict]]], n: int) -> Image.Image:
    """One row per (label, score rows): the label, then the first n images, each with a green border when
    its score row says `correct` and a red one otherwise."""
    cell, label_w = 66, 170
    canvas = Image.new("RGB", (label_w + n * cell, len(rows) * cell), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, images) in enumerate(rows):
        draw.text((4, i * cell + 26), label, fill="black")
        for j, r in enumerate(images[:n]):
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
    splits = {r["id"]: r.get("split", "") for r in prompts}
    rows, grids, nudenet = [], [], []
    for method in methods:
        for concept in concepts:
            key = "all" if method == "original" else slug(concept)
            scores = read_scores(Path(scores_dir) / method / f"{key}.csv")
            row = {"method": method, "concept": concept, **metrics(scores, concept, splits, prm["seed"])}
            remap_file = Path(remap_dir) / method / f"{key}.json"
            if method != "original" and remap_file.is_file():   # none for AdaVD: it edits no weight
                row.update(remap_metrics(json.loads(remap_file.read_text())["scores"], prompts, concept))
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
    rows += average_rows(rows, methods, prm["seed"])

    # 2. summary.csv, Markdown, HTML.
    io.write_csv(out / "summary.csv", COLUMNS, [summary_cells(r, COLUMNS) for r in rows])
    note = (f"{image_counts(prm)}{drawn_in(prm)}. Acc in %, from the scorer's argmax label, with its 95% "
            "interval in brackets (one concept's Acc: Wilson over images; H_o and averages: bootstrap over prompts "
            "and seeds). H_o = 3 / (1/(100-Acc_e) + 1/Acc_s + 1/(100-Acc_g)). Tuning / report: the two halves of "
            "the held-out prompts; settings are chosen on the tuning half only.\n")
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
    choice = ""
    if "frontier" in prm:  # a sweep: Acc_g against Acc_s and Acc_sg, on one held-out half, and the rule's choice
        frontier = frontier_rows(rows, prm["frontier"], prm["frontier_split"])
        write_frontier(frontier, out / "frontier.csv", out / "frontier.png", prm["frontier_split"])
        own = {m for m, spec in prm["methods"].items() if spec["kind"] == "realera"}
        # settings are chosen on the tuning half; on the report half the chosen one is judged (the claim)
        choice = (choice_markdown(frontier, REFERENCE, own, "tuning") if prm["frontier_split"] == "tuning"
                  else claim_markdown(frontier, REFERENCE, prm["frontier_split"]))
    io.write_text(out / "table.md", f"# Erasure results\n\n{note}\n{table}{choice}\n## Remap scores\n\n{remaps}")
    per_prompt = per_prompt_rows(scores_dir, methods, concepts, prompts)
    io.write_csv(out / "per_prompt.csv", PER_PROMPT_COLUMNS, per_prompt)
    per_prompt = [dict(zip(PER_PROMPT_COLUMNS, r)) for r in per_prompt]
    for concept in concepts:
        plots.prompt_accuracy(per_prompt, concept, methods, out / plot_name(concept))
    io.write_text(out / "index.html", _html(note, rows, concepts, methods, grids, "frontier" in prm))


def plot_name(concept: str) -> str:
    """The accuracy-per-prompt plot of one erased concept, relative to the report directory."""
    return f"plots/accuracy_{slug(concept)}.png"


PER_PROMPT_COLUMNS = ["method", "erased", "id", "concept", "kind", "split", "prompt", "n", "acc", "acc_lo", "acc_hi"]


def per_prompt_rows(scores_dir: str | Path, methods: list[str], concepts: list[str], prompts: list[dict]) -> list[list]:
    """Accuracy per method, erased concept and prompt (original: one row per prompt), with its Wilson
    interval over the prompt's images."""
    out = []
    for method in methods:
        for concept in (["(none)"] if method == "original" else concepts):
            key = "all" if method == "original" else slug(concept)
            by_id = {}
            for r in read_scores(Path(scores_dir) / method / f"{key}.csv"):
                by_id.setdefault(int(r["id"]), []).append(int(r["correct"]))
            for p in prompts:
                hits = by_id.get(p["id"], [])
                acc, (lo, hi) = (f"{100 * sum(hits) / len(hits):.2f}" if hits else ""), wilson(sum(hits), len(hits))
                out.append([method, concept, p["id"], p["concept"], p["kind"], p.get("split", ""), p["prompt"],
                            len(hits), acc, fmt(lo, 2) if hits else "", fmt(hi, 2) if hits else ""])
    return out


HTML_COLUMNS = ["method", "concept", "acc_e", "acc_s", "acc_g", "h_o", "acc_sg", "acc_g_tuning", "acc_g_report",
                "acc_sg_tuning", "acc_sg_report", "n_images", *REMAP, "fid", "cs_coco"]


def drawn_in(prm: dict) -> str:
    """The precision the model drew in, for a table's note (a merge refuses parts whose notes differ: the
    same prompts and seeds give other pixels in another precision)."""
    return f", drawn in {prm['dtype']}" if prm.get("dtype") else ""


def image_counts(prm: dict) -> str:
    """How many images each prompt has (generate.images_per_preserved: fewer for the preserved concepts)."""
    few = prm.get("images_per_preserved")
    if not few:
        return f"{prm['images_per_prompt']} images per prompt"
    return (f"{prm['images_per_prompt']} images per prompt of the concepts a model erases, {few} per prompt of "
            "every other concept")


def _html(note, rows, concepts, methods, grids, frontier=False):
    head = "".join(f"<th>{html.escape(c)}</th>" for c in HTML_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')) if c in TEXT_COLUMNS else with_interval(r, c))}</td>"
                                    for c in HTML_COLUMNS) + "</tr>" for r in rows)
    imgs = "".join(f"<h3>{html.escape(m)} / {html.escape(c)}</h3><img src='grids/{html.escape(n)}'>" for m, c, n in grids)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Erasure report</title>"
            f"<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style></head>"
            f"<body><h1>Erasure report</h1><p>{html.escape(note)}</p><table><tr>{head}</tr>{body}</table>"
            + "<h2>Accuracy per prompt</h2><p>Oracle accuracy of each prompt's images, 95% Wilson interval; the "
              "erased concept's prompts first (lower is better), then the other concepts' (higher is better).</p>"
            + "".join(f"<img src='{html.escape(plot_name(c))}' alt='accuracy per prompt, {html.escape(c)} erased'>"
                      for c in concepts)
            + ("<h2>Trade-off frontier</h2><p>Average Acc_g against Acc_s and Acc_sg, 95% intervals as bars "
               "(frontier.csv).</p><img src='frontier.png'>" if frontier else "") +
            f"<h2>Image grids</h2><p>Green border: labelled as the prompt's concept.</p>{imgs}</body></html>\n")


SEPME_COLUMNS = ["set", "k", "model", "concept", "role", "acc_e", "acc_e_lo", "acc_e_hi", "acc_g", "acc_g_lo",
                 "acc_g_hi", "acc_s", "acc_s_lo", "acc_s_hi", "h_o", "h_o_lo", "h_o_hi",
                 "original_acc_e", "original_acc_g", "n_images"]
SEPME_TEXT = ("set", "k", "model", "concept", "role", "n_images")


def by_prompt(rows: list[dict]) -> list[list[int]]:
    """The 0/1 labels of each prompt's images (the bootstrap's unit), in prompt id order."""
    groups = defaultdict(list)
    for r in rows:
        groups[int(r["id"])].append(int(r["correct"]))
    return [groups[k] for k in sorted(groups)]


def sepme_metrics(erase: list[dict], associated: list[dict], specificity: list[dict], restored: bool,
                  rng: np.random.Generator) -> dict:
    """Acc_e, Acc_g, Acc_s with Wilson intervals over images, and H_o with the bootstrap over prompts
    and seeds the run's summary uses (none for a restored concept: it is meant to come back)."""
    out = {}
    for key, rows in (("acc_e", erase), ("acc_g", associated), ("acc_s", specificity)):
        hits = sum(int(r["correct"]) for r in rows)
        out[key] = accuracy(rows)
        out[f"{key}_lo"], out[f"{key}_hi"] = wilson(hits, len(rows))
    if restored:
        out["h_o"] = out["h_o_lo"] = out["h_o_hi"] = float("nan")
        return out
    out["h_o"] = harmonic_overall(out["acc_e"], out["acc_s"], out["acc_g"])
    reps = [prompt_replicates(by_prompt(rows), rng, N_BOOTSTRAP) for rows in (erase, specificity, associated)]
    out["h_o_lo"], out["h_o_hi"] = percentile_interval(harmonic_overall_array(*reps))
    return out


def write_sepme_table(prm: dict, scores_dir: str | Path, out_csv: str | Path, out_md: str | Path) -> list[dict]:
    """The SepME table: per set, model (all / joint / restore) and concept, Acc_e, Acc_g and Acc_s
    (canonical prompts of the concepts outside the set) beside the original model's Acc; returns the rows."""
    scores_dir = Path(scores_dir)
    original = read_scores(scores_dir / "original" / "all.csv")
    rng = np.random.default_rng(prm["seed"])

    table = []
    for name, members in prm["sets"].items():
        outside = sorted({r["concept"] for r in original} - set(members))
        models = ["all"] + (["joint"] + (["restore"] if prm["restore"] else []) if len(members) > 1 else [])
        for model in models:
            scores = read_scores(scores_dir / f"set_{name}" / f"{model}.csv")
            specificity = [r for r in scores if r["concept"] in outside and r["kind"] == "erase"]
            for concept in members:
                restored = model == "restore" and concept == prm["restore"]
                measured = sepme_metrics(concept_rows(scores, concept, "erase"),
                                         concept_rows(scores, concept, "associated"), specificity, restored, rng)
                table.append({"set": name, "k": len(members), "model": model, "concept": concept,
                              "role": "restored" if restored else "erased", **measured,
                              "original_acc_e": accuracy(concept_rows(original, concept, "erase")),
                              "original_acc_g": accuracy(concept_rows(original, concept, "associated")),
                              "n_images": len(scores)})

    io.write_csv(out_csv, SEPME_COLUMNS, [[r[c] if c in SEPME_TEXT else fmt(r[c], 2) for c in SEPME_COLUMNS]
                                          for r in table])
    note = (f"{image_counts(prm)}{drawn_in(prm)}; oracle accuracy in %, with its 95% interval in brackets "
            "(Wilson over images; H_o: bootstrap over prompts and seeds). `all`: every increment of the set; "
            f"`restore`: all but {prm['restore']}'s (no retraining); `joint`: one closed-form solve for the whole "
            "set (not separable). Acc_s: canonical prompts of the concepts outside the set.")
    io.write_text(out_md, f"{SEPME_TITLE}\n\n{note}\n\n{sepme_markdown(table)}")
    return table


SEPME_TITLE = "# SepME on the mini world: separable increments, restoration, and the joint solve"


def sepme_markdown(table: list[dict]) -> str:
    """The SepME table's rows in Markdown (the table written by write_sepme_table, or a merge of them)."""
    md = ["| set | k | model | concept | role | Acc_e↓ (original) | Acc_g↓ (original) | Acc_s↑ | H_o↑ |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        md.append(f"| {r['set']} | {r['k']} | {r['model']} | {r['concept']} | {r['role']} | "
                  f"{with_interval(r, 'acc_e')} ({fmt(r['original_acc_e'])}) | "
                  f"{with_interval(r, 'acc_g')} ({fmt(r['original_acc_g'])}) | {with_interval(r, 'acc_s')} | "
                  f"{with_interval(r, 'h_o')} |")
    return "\n".join(md) + "\n"


def _interval_text(acc: float, lo: float, hi: float) -> str:
    return f"{fmt(acc)} [{fmt(lo)}, {fmt(hi)}]"


def write_original_table(per_prompt: str | Path, weights: str | Path, command: str, out_csv: str | Path,
                         out_md: str | Path, seed: int = 0) -> None:
    """The original-model table: oracle accuracy per concept for its canonical prompt and each held-out
    associated prompt (Wilson 95% intervals), and the held-out mean per half (tuning, report) with a
    bootstrap interval over prompts and seeds; cites the weights' card."""
    with open(per_prompt, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == "original"]
    by_concept = defaultdict(lambda: {"erase": [], "associated": []})
    for r in rows:
        if r["kind"] in ("erase", "associated"):
            by_concept[r["concept"]][r["kind"]].append(r)

    def labels(prompt_rows):  # 0/1 per image, rebuilt from n and acc (the bootstrap needs only the counts)
        return [count_labels(int(r["n"]), float(r["acc"])) for r in prompt_rows]

    rng = np.random.default_rng(seed)
    table = []
    md = ["# Mini world: the original model\n", f"Regenerate: `{command}`\n",
          "Oracle accuracy (%) over images of each prompt (argmax label; a reject counts as wrong), with 95% "
          "intervals: Wilson over one prompt's images; bootstrap over prompts and seeds for a mean. Held-out "
          "prompts are marked (t) tuning half or (r) report half.\n",
          "| concept | canonical prompt | Acc (canonical) | held-out associated prompts: Acc each | mean, tuning | "
          "mean, report |", "|---|---|---|---|---|---|"]
    for concept, kinds in by_concept.items():
        canon, assoc = kinds["erase"][0], kinds["associated"]
        c_lo, c_hi = float(canon["acc_lo"]), float(canon["acc_hi"])   # per_prompt.csv's Wilson interval
        means = {}
        for half in ("tuning", "report"):
            half_rows = [a for a in assoc if a.get("split") == half]
            reps = prompt_replicates(labels(half_rows), rng, N_BOOTSTRAP)
            total = sum(int(a["n"]) for a in half_rows)
            mean = sum(float(a["acc"]) * int(a["n"]) for a in half_rows) / total if total else float("nan")
            means[half] = (mean, *percentile_interval(reps))
        detail = "; ".join(f"{a['prompt']} ({a.get('split', '')[:1]}): "
                           f"{_interval_text(float(a['acc']), float(a['acc_lo']), float(a['acc_hi']))}" for a in assoc)
        table.append([concept, canon["prompt"], canon["acc"], fmt(c_lo, 2), fmt(c_hi, 2), canon["n"],
                      *[fmt(x, 2) for half in ("tuning", "report") for x in means[half]], len(assoc), detail])
        md.append(f"| {concept} | {canon['prompt']} | {_interval_text(float(canon['acc']), c_lo, c_hi)} | {detail} | "
                  f"{_interval_text(*means['tuning'])} | {_interval_text(*means['report'])} |")
    card = Path(weights) / "card.json"
    if card.is_file():
        c = json.loads(card.read_text())
        md.append(f"\nWeights: `{weights}` (UNet {c['unet']['config']['steps']} steps, final loss "
                  f"{c['unet']['final_loss']:.4f}; oracle {c['oracle']['metrics']['fresh_renders_acc']}% on fresh renders, "
                  f"{c['oracle']['metrics']['degraded_renders_acc']}% on model-degraded renders).")
    io.write_csv(out_csv, ["concept", "canonical_prompt", "canonical_acc", "canonical_acc_lo", "canonical_acc_hi",
                           "n_per_prompt", "acc_g_tuning", "acc_g_tuning_lo", "acc_g_tuning_hi", "acc_g_report",
                           "acc_g_report_lo", "acc_g_report_hi", "n_associated_prompts", "associated_detail"], table)
    io.write_text(out_md, "\n".join(md) + "\n")


def copy_results(csv_path: str | Path, md_path: str | Path, command: str, out_csv: str | Path,
                 out_md: str | Path, png: str | Path | None = None, out_png: str | Path | None = None,
                 per_prompt: str | Path | None = None, out_per_prompt: str | Path | None = None) -> None:
    """A run's tables copied under results/, the .md with the command that regenerates them (and its
    frontier plot, when it has one; and its per-prompt counts, from which scripts/merge_results.py
    recomputes the averages' intervals when tables of several runs are merged)."""
    if png:
        io.write_bytes(out_png, Path(png).read_bytes())
    if per_prompt:
        io.write_text(out_per_prompt, Path(per_prompt).read_text(encoding="utf-8"))
    title, _, body = Path(md_path).read_text(encoding="utf-8").partition("\n")
    io.write_text(out_md, f"{title}\n\nRegenerate: `{command}`\n{body}")
    io.write_text(out_csv, Path(csv_path).read_text(encoding="utf-8"))
