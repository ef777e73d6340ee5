"""The export stage: an erased model that plain diffusers loads (no erasure package), drawing the same
images as the generate stage, with a model card whose front matter parses."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from conftest import ROOT, run_stage, sd_params
from erasure.config import defaults

# Run in a fresh interpreter that cannot import this package: isolated mode (no cwd, no PYTHONPATH)
# and an import hook that refuses `erasure` even if it were installed.
NO_ERASURE = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "erasure":
            raise ImportError("the exported model must load without the erasure package")
sys.meta_path.insert(0, Refuse())
"""


def run_plain(script, cwd):
    proc = subprocess.run([sys.executable, "-I", "-c", NO_ERASURE + script], cwd=cwd, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_plain_python_cannot_import_the_package(tmp_path):
    out = run_plain("try:\n import erasure\n print('imported')\nexcept ImportError:\n print('refused')", tmp_path)
    assert out.strip() == "refused"


@pytest.fixture(scope="module")
def sd_export(tiny_sd, tmp_path_factory):
    """A tiny-SD RealEra edit (closed form + LoRA), its generate-stage images, and its export."""
    tmp = tmp_path_factory.mktemp("sd_export")
    world = sd_params(tiny_sd, "float32")
    mining = dict(num_neighbors=6, num_beyond=6, d1=0.6, d1_anchor=0.3, d2=3.0, s1=0.999, s2=0.0, data_components=4)
    run_stage("mine", "--params", json.dumps({**world, "concept": "heart", "sampler": "paper", "erase_prompts": ["a heart"],
                                             "anchor": "a shape", "mining": mining, "prompt_bank": [], "seed": 3}),
              "--concept", "heart", "--sampler", "paper", "--out", tmp / "mine.safetensors")
    cf = {**world, "concept": "heart", "kind": "realera", "regularization": "projected",
          "closed_form": dict(lam=1.0, ridge=0.1, reg_weight=1.0), "pooled": False, "preserve_prompts": ["a star"]}
    run_stage("closed_form", "--params", json.dumps(cf), "--method", "realera", "--concept", "heart",
              "--embeddings", tmp / "mine.safetensors", "--out", tmp / "deltas.safetensors")
    lora = {**world, "concept": "heart", "lora": dict(rank=2, steps=3, lr=1e-2, batch_size=2, anchor_images=2,
                                                      anchor_steps=2, anchor_guidance=5.0),
            "regularization": "projected", "preserve_prompts": ["a star"], "seed": 1}
    (tmp / "lora").mkdir()
    run_stage("train_lora", "--params", json.dumps(lora), "--deltas", tmp / "deltas.safetensors",
              "--embeddings", tmp / "mine.safetensors", "--out", tmp / "lora" / "pytorch_lora_weights.safetensors")
    gen = {**defaults("generate"), "steps": 3, "guidance": 5.0, "eta": 1.0, "images_per_prompt": 2, "batch_size": 4}
    (tmp / "prompts.csv").write_text("id,concept,kind,prompt,seed\n0,heart,erase,a heart,5\n1,star,erase,a star,9\n")
    run_stage("generate", "--params", json.dumps({**world, "method": "realera", "generate": gen}),
              "--prompts", tmp / "prompts.csv", "--deltas", tmp / "deltas.safetensors", "--lora", tmp / "lora",
              "--out", tmp / "images.csv")
    (tmp / "summary.csv").write_text("method,concept,acc_e,acc_e_lo,acc_e_hi,acc_s,n_images\n"
                                     "realera,heart,2.0,0.5,7.0,88.0,200\noriginal,heart,95.0,91.0,97.5,89.0,200\n")
    prm = {**world, "method": "realera", "concept": "heart", "kind": "realera", "concepts": ["heart"],
           "settings": {"closed_form": cf}, "generate": {k: gen[k] for k in ("steps", "guidance", "eta", "sampler")},
           "export": {"methods": None, "lora_rank": 64}}
    run_stage("export", "--params", json.dumps(prm), "--method", "realera", "--concept", "heart",
              "--deltas", tmp / "deltas.safetensors", "--lora", tmp / "lora", "--summary", tmp / "summary.csv",
              "--out", tmp / "export")
    return tmp


def test_plain_diffusers_draws_the_generate_stages_images(sd_export):
    rows = (sd_export / "images.csv").read_text().splitlines()[1:]
    jobs = [(r.split(",")[3], int(r.split(",")[4]), r.split(",")[-1]) for r in rows]
    script = f"""
import json, numpy as np, torch
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained({str(sd_export / 'export')!r})
assert type(pipe.scheduler).__name__ == "DDIMScheduler"
for i, (prompt, seed, _) in enumerate({jobs!r}):
    image = pipe(prompt, num_inference_steps=3, guidance_scale=5.0, eta=1.0, output_type="np",
                 generator=torch.Generator().manual_seed(seed)).images[0]
    np.save(f"plain_{{i}}.npy", (image * 255).round().astype(np.uint8))
"""
    run_plain(script, sd_export)
    assert len(jobs) == 4
    for i, (_, _, png) in enumerate(jobs):
        ours = np.asarray(Image.open(png).convert("RGB")).astype(int)
        plain = np.load(sd_export / f"plain_{i}.npy").astype(int)
        assert ours.shape == plain.shape and np.abs(ours - plain).max() <= 1


def test_unchanged_components_are_links_and_the_unet_is_new(sd_export, tiny_sd):
    exported = sd_export / "export"
    assert os.path.samefile(next((exported / "vae").glob("*.safetensors")), next((tiny_sd / "vae").glob("*.safetensors")))
    assert not os.path.samefile(next((exported / "unet").glob("*.safetensors")),
                                next((tiny_sd / "unet").glob("*.safetensors")))
    assert not list(sd_export.glob(".export*"))   # no temp directory left behind


def test_model_card_front_matter_names_method_and_concepts(sd_export):
    card = (sd_export / "export" / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["erasure_method"] == "realera" and meta["erased_concepts"] == ["heart"]
    assert meta["library_name"] == "diffusers" and "concept-erasure" in meta["tags"]
    assert "| realera | 2.0 [0.5, 7.0] | 88.0 | 200 |" in body     # the run's metrics with their interval
    assert "deltas.safetensors" in body and "pytorch_lora_weights.safetensors" in body


def test_full_rank_lora_export_rebuilds_the_merged_unet(sd_export, tiny_sd):
    """A LoRA at a rank no smaller than the weights' is an exact fit: fused onto the base model, it gives
    the exported UNet's weights."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    fit = json.loads((sd_export / "export/lora/lora_fit.json").read_text())
    assert fit["modules"] == 8 and fit["max_relative_error"] < 1e-5 and fit["not_in_lora"] == []
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    pipe.load_lora_weights(str(sd_export / "export/lora"))
    pipe.fuse_lora()
    pipe.unload_lora_weights()
    merged = UNet2DConditionModel.from_pretrained(sd_export / "export", subfolder="unet").state_dict()
    fused = pipe.unet.state_dict()
    assert all(torch.allclose(fused[k], merged[k], atol=1e-5) for k in merged)


def test_low_rank_fit_reports_its_error(tmp_path, tiny_sd):
    from erasure import export
    from erasure.world import load_sd
    world = load_sd(str(tiny_sd))
    base = {k: v.clone() for k, v in world.unet.state_dict().items()}
    name = next(iter(world.edit_modules()))
    with torch.no_grad():
        world.edit_modules()[name].weight += torch.randn(world.edit_modules()[name].weight.shape,
                                                         generator=torch.Generator().manual_seed(0))
    fit = export.lora_fit(world, base, 1, tmp_path)
    assert fit["modules"] == 1 and 0.1 < fit["relative_error"][name] < 1


def test_miniworld_export_loads_as_a_plain_unet(tmp_path):
    from erasure.edits import apply_edit
    from erasure.world import load_miniworld
    world = load_miniworld(ROOT / "weights/miniworld")
    gen = torch.Generator().manual_seed(0)
    deltas = {n: 0.05 * torch.randn(m.weight.shape, generator=gen) for n, m in world.edit_modules().items()}
    save_file(deltas, tmp_path / "deltas.safetensors")
    apply_edit(world, tmp_path / "deltas.safetensors")
    x, cond = torch.randn(1, 12, 16, 16, generator=gen), torch.randn(1, 16, 384, generator=gen)
    torch.save({"x": x, "cond": cond}, tmp_path / "inputs.pt")
    with torch.no_grad():
        ours = world.unet(x, 500, cond).sample
    prm = {"world": "miniworld", "miniworld": {"weights": str(ROOT / "weights/miniworld"), "dtype": "float32"},
           "method": "cf",
           "concept": "heart", "kind": "realera", "concepts": ["heart"], "settings": {},
           "generate": {"steps": 25, "guidance": 5.0, "eta": 1.0, "sampler": None}, "export": {"methods": None, "lora_rank": 0}}
    run_stage("export", "--params", json.dumps(prm), "--method", "cf", "--concept", "heart",
              "--deltas", tmp_path / "deltas.safetensors", "--out", tmp_path / "export")
    run_plain(f"""
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
unet = UNet2DConditionModel.from_pretrained({str(tmp_path / 'export')!r}, subfolder="unet")
DDIMScheduler.from_pretrained({str(tmp_path / 'export')!r}, subfolder="scheduler")
i = torch.load("inputs.pt", weights_only=True)
with torch.no_grad():
    torch.save(unet(i["x"], 500, i["cond"]).sample, "plain.pt")
""", tmp_path)
    assert torch.allclose(torch.load(tmp_path / "plain.pt", weights_only=True), ours, atol=1e-5)
    assert "Not evaluated in this run" in (tmp_path / "export/README.md").read_text()


def test_card_survives_hostile_concept_names(tiny_sd):
    from erasure.model_card import model_card
    name = "x | y\n---\nevil: true"
    prm = {"world": "sd", "sd": {"model": str(tiny_sd)}, "method": "uce", "concept": "x", "kind": "uce",
           "concepts": [name], "settings": {}, "generate": {"steps": 2, "guidance": 5.0, "eta": 0.0, "sampler": None}}
    rows = [{"method": "uce", "concept": "x", "acc_e": "1.0", "n_images": "10"}]
    card = model_card(prm, rows, [], [], None, "snakemake all")
    front = card.split("---\n")[1]
    assert yaml.safe_load(front)["erased_concepts"] == [name] and "evil" not in yaml.safe_load(front)
    table = [line for line in card.splitlines() if line.startswith("| uce")]
    assert table == ["| uce | 1.0 | 10 |"]
