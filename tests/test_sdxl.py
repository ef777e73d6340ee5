"""SDXL: its world (two text encoders, the pooled embedding and time ids) drawn exactly as diffusers'
StableDiffusionXLPipeline draws, and the whole DAG on a tiny SDXL built offline."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import run_dag, run_stage, tiny_objects_config


@pytest.fixture(scope="module")
def pipe(tiny_sdxl):
    from diffusers import DDIMScheduler, StableDiffusionXLPipeline
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)   # the sampler the stages draw with
    return pipe


def test_the_family_comes_from_model_index_json(tiny_sd, tiny_sdxl, tmp_path):
    from erasure.environment import model_family
    assert model_family(str(tiny_sd)) == "sd" and model_family(str(tiny_sdxl)) == "sdxl"
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusion3Pipeline"}))
    with pytest.raises(ValueError, match="is a StableDiffusion3Pipeline pipeline .*supported: StableDiffusionPipeline"):
        model_family(str(tmp_path))


def test_context_pooled_embedding_and_null_are_the_pipelines(tiny_sdxl, pipe):
    from erasure.world import load_sd
    world = load_sd(str(tiny_sdxl))
    emb = world.encoder.encode(["a heart", "a star"])
    context, negative, pooled, negative_pooled = pipe.encode_prompt(["a heart", "a star"], device="cpu")
    assert emb.shape == (2, 16 + 1, 16 + 32)        # 16 tokens of 16 + 32 channels, then the pooled row
    assert torch.equal(emb[:, :16], context)
    assert torch.allclose(emb[:, 16, :24], pooled, atol=1e-6) and not emb[:, 16, 24:].any()
    assert world.zero_null and not world.null_embedding().any() and not negative.any() and not negative_pooled.any()
    assert torch.equal(world.encoder.encode_tokens(["a heart"])[0], emb[0, :16])


def test_a_learned_token_lives_in_both_text_encoders(tiny_sdxl):
    """Concept inversion and UnlearnDiffAtk on SDXL: a placeholder's vector is both encoders' input
    embeddings side by side (16 + 32), and set to a word's it encodes exactly as that word, pooled row
    included."""
    from erasure import placeholders
    from erasure.world import load_sd
    encoder = load_sd(str(tiny_sdxl)).encoder
    assert placeholders.input_dim(encoder) == 16 + 32
    row = placeholders.word_embeddings(encoder, ["heart"])
    handle = placeholders.install(encoder, ["<test-heart>"], row)
    try:
        assert torch.equal(encoder.encode(["a <test-heart>"]), encoder.encode(["a heart"]))
        assert not torch.equal(encoder.encode(["a <test-heart>"]), encoder.encode(["a star"]))
    finally:
        handle.remove()


def test_generation_draws_the_pipelines_images(tiny_sdxl, pipe):
    """Our sampler and UNet call (the pooled row split off by the pre-hook) against the SDXL pipeline with
    the same DDIM scheduler, guidance and per-image seeds."""
    from erasure.sampling import sample
    from erasure.world import load_sd
    world = load_sd(str(tiny_sdxl))
    prompts, seeds = ["a heart", "a star"], [3, 8]
    latents = sample(world.unet, world.make_scheduler(), world.encoder.encode(prompts), world.null_embedding(),
                     seeds, world.latent_shape, steps=3, guidance=5.0)
    ours = world.decode(latents).astype(int)
    plain = pipe(prompts, num_inference_steps=3, guidance_scale=5.0, height=16, width=16, output_type="np",
                 generator=[torch.Generator().manual_seed(s) for s in seeds]).images
    assert ours.shape == (2, 16, 16, 3) and np.abs(ours - (plain * 255).round().astype(int)).max() <= 1


@pytest.mark.parametrize("kind", ["cf", "uce"])
def test_the_pooled_edit_maps_the_erase_prompts_pooled_path_to_the_anchors(tiny_sdxl, tmp_path, kind):
    """closed_form.pooled: beside the to_k / to_v deltas, add_embedding.linear_1's pooled columns move the
    erase prompt's pooled embedding to the anchor's (UCE's guide); the time-id columns and preserve
    prompts stay put."""
    from erasure.config import defaults
    from erasure.edits import apply_edit
    from erasure.pooled import MODULE, pooled_rows
    from erasure.world import load_sd
    world_prm = {"world": "sd", "sd": {**defaults("sd"), "model": str(tiny_sdxl), "dtype": "float32"}}
    mining = dict(num_neighbors=4, num_beyond=4, d1=0.6, d1_anchor=0.3, d2=3.0, s1=0.999, s2=0.0, data_components=4)
    run_stage("mine", "--params", json.dumps({**world_prm, "concept": "heart", "sampler": "none",
                                              "erase_prompts": ["a heart"], "anchor": "a shape", "mining": mining,
                                              "prompt_bank": [], "seed": 3}),
              "--concept", "heart", "--sampler", "none", "--out", tmp_path / "mine.safetensors")
    prm = {**world_prm, "concept": "heart", "kind": kind, "pooled": True, "preserve_prompts": ["a star"]}
    if kind == "uce":
        prm.update(tokens="last", erase_prompts=["a heart"],
                   uce=dict(lamb=0.01, erase_scale=1.0, preserve_scale=1.0, guide="a shape"))
    else:
        prm.update(regularization="none", closed_form=dict(lam=1.0, ridge=0.01, reg_weight=1.0))
    run_stage("closed_form", "--params", json.dumps(prm), "--method", kind, "--concept", "heart",
              "--embeddings", tmp_path / "mine.safetensors", "--out", tmp_path / "deltas.safetensors")
    deltas = load_file(tmp_path / "deltas.safetensors")
    assert f"{MODULE}.weight" in deltas and len(deltas) == 2 * 4 + 1
    assert not deltas[f"{MODULE}.weight"][:, 24:].any()          # the time-id columns
    world = load_sd(str(tiny_sdxl))
    layer = world.unet.get_submodule(MODULE)
    heart, shape, star = pooled_rows(world.encoder, ["a heart", "a shape", "a star"])
    width = layer.weight.shape[1] - 24

    def added(p):   # the layer's response to a pooled embedding (time ids zero)
        return layer(torch.cat([p, torch.zeros(width)]))

    before = {k: added(v).detach() for k, v in (("heart", heart), ("shape", shape), ("star", star))}
    apply_edit(world, str(tmp_path / "deltas.safetensors"))
    after = {k: added(v).detach() for k, v in (("heart", heart), ("star", star))}
    gap = (before["heart"] - before["shape"]).norm()
    assert (after["heart"] - before["shape"]).norm() < 0.2 * gap    # heart now reads (nearly) as the anchor
    assert (after["star"] - before["star"]).norm() < 0.2 * gap       # the preserved prompt barely moves


# The whole DAG through Snakemake, its rules and report. Every other stage (UCE, ESD-x, RECE, SPEED, MACE,
# AdaVD, SepME, Ring-A-Bell, revival) runs on the tiny SDXL in tests/test_gpu_check.py.
@pytest.mark.slow
def test_the_objects_dag_runs_on_a_tiny_sdxl_and_its_export_draws_the_same_images(tiny_sdxl, tmp_path):
    config = tiny_objects_config(tmp_path, {"model": str(tiny_sdxl), "dtype": "bfloat16"})
    config["run_methods"] = ["original", "realera"]
    rows = run_dag(tmp_path, config)
    out = tmp_path / "out"
    assert sorted(rows) == ["original", "realera"] and all(r["n_images"] for r in rows.values())
    deltas = load_file(out / "edit/realera/heart.safetensors")
    assert len(deltas) == 2 * 4 and all(k.endswith(("attn2.to_k", "attn2.to_v")) for k in deltas)
    # The deliverable: plain diffusers loads the export and draws the generate stage's images.
    from diffusers import StableDiffusionXLPipeline
    export = StableDiffusionXLPipeline.from_pretrained(out / "export/realera/heart", torch_dtype=torch.bfloat16)
    with open(out / "images/realera/heart.csv", newline="") as f:
        first = next(csv.DictReader(f))
    image = export(first["prompt"], num_inference_steps=2, guidance_scale=7.5, eta=0.0, height=16, width=16,
                   output_type="np", generator=torch.Generator().manual_seed(int(first["seed"]))).images[0]
    ours = np.asarray(Image.open(first["file"]).convert("RGB")).astype(int)
    # Not bit-equal: the stages run the text encoders in float32 (world.py), the pipeline in bfloat16.
    assert np.abs(ours - (image * 255).round().astype(int)).max() <= 8
