"""The model card of an exported model: README.md with the hub's YAML front matter, then what was
erased, how, how well (the run's metrics and attack success rates, with 95% intervals), how to load
it and the command that made it. Concept names are untrusted text: front-matter values are JSON strings
and table cells are escaped for Markdown."""
import csv
import json
from pathlib import Path

from .datasets import sha256
from .environment import model_family
from .sampling import SOLVERS

METRICS = [("acc_e", "Acc_e (erased, lower is better)"), ("acc_s", "Acc_s (specificity)"),
           ("acc_g", "Acc_g (generality, lower is better)"), ("h_o", "H_o"), ("acc_sg", "Acc_sg")]


def cell(text: object) -> str:
    """A Markdown table cell: pipes escaped and line breaks flattened, so a name cannot break the table."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def number(value: str | None) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None  # "-" or "": not measured


def with_interval(row: dict, key: str) -> str:
    """"12.3 [8.1, 17.9]" from a results CSV row ("-" when the run did not measure it)."""
    value = number(row.get(key))
    if value is None:
        return "-"
    lo, hi = number(row.get(f"{key}_lo")), number(row.get(f"{key}_hi"))
    return f"{value:.1f} [{lo:.1f}, {hi:.1f}]" if lo is not None and hi is not None else f"{value:.1f}"


def read_rows(path: str | Path | None) -> list[dict]:
    if not path or not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def metrics_table(summary_rows: list[dict], method: str, concept: str) -> str:
    """This model's row and the unedited model's, on the run's evaluation prompts."""
    rows = [r for r in summary_rows if r.get("concept") == concept and r.get("method") in (method, "original")]
    if not rows:
        return "Not evaluated in this run (add the method to run_methods and rerun to fill this table).\n"
    keys = [(k, title) for k, title in METRICS if any(number(r.get(k)) is not None for r in rows)]
    lines = ["| model | " + " | ".join(t for _, t in keys) + " | images |",
             "|---" * (len(keys) + 2) + "|"]
    for r in sorted(rows, key=lambda r: r["method"] != method):
        lines.append(f"| {cell(r['method'])} | " + " | ".join(with_interval(r, k) for k, _ in keys)
                     + f" | {cell(r.get('n_images', '-'))} |")
    return "\n".join(lines) + "\n"


def set_table(sepme_rows: list[dict], set_method: str, variant: str) -> str:
    """A SepME set model's rows of sepme.csv: each concept of the set, erased or restored."""
    rows = [r for r in sepme_rows if r.get("set") == set_method[len("set_"):] and r.get("model") == variant]
    if not rows:
        return "Not evaluated in this run (target sepme_table fills this table).\n"
    lines = ["| concept | role | Acc_e | Acc_g | Acc_s | H_o | unedited Acc_e | unedited Acc_g | images |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join([cell(r["concept"]), cell(r["role"])]
                                       + [with_interval(r, k) for k in ("acc_e", "acc_g", "acc_s", "h_o")]
                                       + [cell(r.get(k, "-")) for k in ("original_acc_e", "original_acc_g", "n_images")])
                     + " |")
    return "\n".join(lines) + "\n"


def attack_table(robustness_rows: list[dict], method: str, concept: str) -> str:
    rows = [r for r in robustness_rows if r.get("method") == method and r.get("concept") == concept]
    if not rows:
        return "No attack was run on this model (config attacks.run).\n"
    lines = ["| attack | ASR before | ASR after | images | steps to 50% (revival) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {cell(r['attack'])} | {with_interval(r, 'pre_asr')} | {with_interval(r, 'post_asr')} | "
                     f"{cell(r.get('n_images', '-'))} | {cell(r.get('steps_to_50') or '-')} |")
    return "\n".join(lines) + "\n"


def front_matter(prm: dict) -> str:
    sd = prm["world"] == "sd"
    meta = {"base_model": prm["sd"]["model"] if sd else "concept-erasure mini world",
            "library_name": "diffusers", "pipeline_tag": "text-to-image",
            "tags": ["text-to-image", "concept-erasure", f"erasure-{prm['kind']}"] + (["stable-diffusion"] if sd else []),
            "erased_concepts": list(prm["concepts"]), "erasure_method": prm["method"], "erasure_kind": prm["kind"]}
    # One JSON value per key (JSON is YAML): a name's line breaks stay escaped inside its string, so
    # no name can end the front matter or add a key.
    return "---\n" + "".join(f"{k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in meta.items()) + "---\n"


def usage(prm: dict, prompt: str) -> str:
    g = prm["generate"]
    if prm["world"] != "sd":
        return ("The mini world's UNet loads with diffusers alone; its text encoder is all-MiniLM-L6-v2 "
                "(16 tokens, last hidden state) and its 12x16x16 latents are 32x32 RGB images packed by "
                "pixel_unshuffle(2):\n\n```python\nfrom diffusers import DDIMScheduler, UNet2DConditionModel\n"
                "unet = UNet2DConditionModel.from_pretrained(DIR, subfolder=\"unet\")\n"
                "scheduler = DDIMScheduler.from_pretrained(DIR, subfolder=\"scheduler\")\n```\n")
    # DiffusionPipeline picks the class model_index.json names: StableDiffusionPipeline, the SDXL or Flux one.
    if model_family(prm["sd"]["model"]) == "flux":   # no eta: FluxPipeline's sampler is deterministic
        return ("```python\nimport torch\nfrom diffusers import DiffusionPipeline\n\n"
                "pipe = DiffusionPipeline.from_pretrained(DIR)  # flow-matching Euler steps, as the evaluation drew\n"
                f"image = pipe({json.dumps(prompt)}, num_inference_steps={g['steps']},\n"
                f"             guidance_scale={g['guidance']},\n"
                "             generator=torch.Generator().manual_seed(SEED)).images[0]\n```\n\n"
                "With these settings and one CPU generator per image, image SEED of a prompt is, up to the text "
                "encoders' precision, the pipeline's evaluation image of that seed.\n")
    imports, scheduler = "DiffusionPipeline", "  # scheduler: DDIM, as the evaluation drew\n"
    if g["sampler"]:   # the solver the evaluation drew with, built on the exported DDIM schedule
        class_name, settings = SOLVERS[g["sampler"]]
        imports += f", {class_name}"
        args = "".join(f", {k}={v!r}" for k, v in settings.items())
        scheduler = f"\npipe.scheduler = {class_name}.from_config(pipe.scheduler.config{args})\n"
    return (f"```python\nimport torch\nfrom diffusers import {imports}\n\n"
            "pipe = DiffusionPipeline.from_pretrained(DIR)" + scheduler +
            f"image = pipe({json.dumps(prompt)}, num_inference_steps={g['steps']}, guidance_scale={g['guidance']},\n"
            f"             eta={g['eta']}, generator=torch.Generator().manual_seed(SEED)).images[0]\n```\n\n"
            "With these settings and one CPU generator per image, image SEED of a prompt is the pipeline's "
            "evaluation image of that seed.\n")


def model_card(prm: dict, summary_rows: list[dict], robustness_rows: list[dict], edit_files: list[str],
               lora_fit: dict | None, command: str) -> str:
    """README.md of an exported model."""
    method, concept = prm["method"], prm["concept"]
    names = ", ".join(prm["concepts"])
    parts = [front_matter(prm),
             f"# {cell(names)} erased by {cell(method)}\n",
             f"A text-to-image model with **{cell(names)}** erased by the `{cell(method)}` method "
             f"(kind {prm['kind']}) of the concept-erasure pipeline, the edit merged into the UNet's weights. "
             "Every figure below comes from images the pipeline drew with this model; intervals are 95%.\n",
             "## How to use\n", usage(prm, f"a picture of a {prm['concepts'][0]}"),
             "## Erasure and preservation\n",
             "Acc_e: erased-concept prompts judged as the concept; Acc_s: other concepts kept; Acc_g: "
             "prompts that describe the concept without naming it (lower is better); H_o: their harmonic "
             "mean (docs/protocol.md).\n",
             set_table(summary_rows, method, concept) if method.startswith("set_")
             else metrics_table(summary_rows, method, concept),
             "## Attacks\n", "Attack success rate (ASR): images judged as the erased concept under each attack.\n",
             attack_table(robustness_rows, method, concept)]
    if lora_fit:
        parts += ["## LoRA of the edit\n",
                  f"`lora/pytorch_lora_weights.safetensors`: the edit as a rank-{lora_fit['rank']} LoRA over the "
                  f"base model ({lora_fit['modules']} linear weights; relative Frobenius error of the fit: mean "
                  f"{lora_fit['mean_relative_error']:.4f}, max {lora_fit['max_relative_error']:.4f}; per module "
                  "in `lora/lora_fit.json`). Load it with `pipe.load_lora_weights(DIR + \"/lora\")` on the base model.\n"]
        if lora_fit["not_in_lora"]:
            parts.append(f"The LoRA leaves out {len(lora_fit['not_in_lora'])} changed parameters that are not "
                         "linear weights (listed in lora_fit.json): use the merged model for the full edit.\n")
    parts += ["## How it was made\n", f"```\n{command}\n```\n",
              "Settings of the stages that made the edit:\n",
              "```json\n" + json.dumps(prm["settings"], indent=1, sort_keys=True) + "\n```\n"]
    if edit_files:
        parts += ["Edit files (sha256):\n", "\n".join(f"- `{Path(f).name}`: {sha256(f)}" for f in edit_files) + "\n"]
    return "\n".join(parts)
