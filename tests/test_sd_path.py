"""Every erasure stage on a tiny SD v1.x-architecture model built offline."""
import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import run_stage, sd_params
from erasure.config import defaults


@pytest.fixture(scope="module")
def sd_run(tiny_sd, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sd_run")
    concepts = {"concepts": {
        "heart": {"name": "heart", "synonyms": ["heart"], "associated": [{"prompt": "a love heart"}]},
        "star": {"name": "star", "synonyms": ["star"], "associated": [{"prompt": "a shining star"}]}}}
    (tmp / "concepts.json").write_text(json.dumps(concepts))
    world = sd_params(tiny_sd, "float32")
    mining = dict(num_neighbors=6, num_beyond=6, d1=0.6, d1_anchor=0.3, d2=3.0, s1=0.999, s2=0.0, data_components=4)
    mine = {**world, "concept": "heart", "sampler": "paper", "erase_prompts": ["a heart"], "anchor": "a shape",
            "mining": mining, "prompt_bank": [], "seed": 3}
    run_stage("mine", "--params", json.dumps(mine), "--concept", "heart", "--sampler", "paper",
              "--out", tmp / "mine.safetensors")
    cf = {**world, "concept": "heart", "kind": "realera", "regularization": "projected",
          "closed_form": dict(lam=1.0, ridge=0.1, reg_weight=1.0), "pooled": False, "preserve_prompts": ["a star"]}
    run_stage("closed_form", "--params", json.dumps(cf), "--method", "realera", "--concept", "heart",
              "--embeddings", tmp / "mine.safetensors", "--out", tmp / "deltas.safetensors")
    gen = {**defaults("generate"), "steps": 2, "guidance": 5.0, "eta": 0.0, "images_per_prompt": 2, "batch_size": 4}
    lora = {**world, "concept": "heart", "lora": dict(rank=2, steps=4, lr=1e-3, batch_size=2, anchor_images=2,
                                                      anchor_steps=2, anchor_guidance=5.0),
            "regularization": "projected", "preserve_prompts": ["a star"], "seed": 1}
    (tmp / "lora").mkdir()
    run_stage("train_lora", "--params", json.dumps(lora), "--deltas", tmp / "deltas.safetensors",
              "--embeddings", tmp / "mine.safetensors", "--out", tmp / "lora" / "pytorch_lora_weights.safetensors")
    prompts = tmp / "prompts.csv"
    prompts.write_text("id,concept,kind,prompt,seed\n0,heart,erase,a heart,0\n1,heart,associated,a love heart,0\n"
                       "2,star,erase,a star,0\n")
    run_stage("generate", "--params", json.dumps({**world, "method": "realera", "generate": gen}),
              "--prompts", prompts, "--deltas", tmp / "deltas.safetensors", "--lora", tmp / "lora",
              "--out", tmp / "images.csv")
    run_stage("remap", "--params", json.dumps({**world, "concept": "heart", "anchor": "a shape"}),
              "--prompts", prompts, "--deltas", tmp / "deltas.safetensors", "--out", tmp / "remap.json")
    return tmp


def test_embedding_set_starts_at_the_concept_token(sd_run):
    meta = json.loads((sd_run / "mine.json").read_text())
    assert meta["prompts"][0]["span_start"] == 2  # <start> a heart: causal CLIP starts the span at "heart"
    tensors = load_file(sd_run / "mine.safetensors")
    assert tensors["p0.neighbors"].shape[0] == 6 and tensors["p0.erase"].shape[-1] == 32


def test_closed_form_edits_every_attn2_key_and_value(sd_run):
    deltas = load_file(sd_run / "deltas.safetensors")
    assert len(deltas) == 8 and all(k.endswith(("attn2.to_k", "attn2.to_v")) for k in deltas)
    assert all(torch.isfinite(v).all() and v.abs().max() > 0 for v in deltas.values())


def test_lora_loads_through_load_lora_weights(sd_run, tiny_sd):
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    name = next(n for n, _ in pipe.unet.named_modules() if n.endswith("attn2.to_k"))
    before = pipe.unet.get_submodule(name).weight.detach().clone()
    pipe.load_lora_weights(str(sd_run / "lora"))
    pipe.fuse_lora()
    assert not torch.allclose(pipe.unet.get_submodule(name).weight, before)


def test_generation_wrote_every_image(sd_run):
    lines = (sd_run / "images.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 * 2
    from PIL import Image
    assert Image.open(lines[1].split(",")[-1]).size == (16, 16)


def test_remap_is_high_for_the_erased_prompt(sd_run):
    scores = json.loads((sd_run / "remap.json").read_text())["scores"]
    assert scores["0"] > 0.5 and scores["0"] > scores["2"]
