"""Flux: its world (T5 token states, CLIP's pooled embedding, the packed transformer and its flow-matching
sampler) drawn exactly as diffusers' FluxPipeline draws, the closed form on context_embedder, and the DAG of
what runs on Flux today on a tiny Flux built offline."""
import csv
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from conftest import ROOT, run_dag, run_stage, tiny_objects_config


@pytest.fixture(scope="module")
def pipe(tiny_flux):
    from diffusers import FluxPipeline
    return FluxPipeline.from_pretrained(tiny_flux)


@pytest.fixture(scope="module")
def world(tiny_flux):
    from erasure.world import load_sd
    return load_sd(str(tiny_flux), resolution=16)


def test_the_context_is_t5s_states_and_the_pooled_row_clips(tiny_flux, world, pipe):
    from erasure.environment import model_family
    assert model_family(str(tiny_flux)) == "flux"
    prompts = ["a photo of a heart", "a star"]
    emb = world.encoder.encode(prompts)
    states, pooled, _ = pipe.encode_prompt(prompts, prompt_2=None, max_sequence_length=16)
    assert emb.shape == (2, 16 + 1, 32)          # 16 T5 tokens of 32 channels, then the pooled row
    assert torch.allclose(emb[:, :16], states, atol=1e-6)
    assert torch.allclose(emb[:, 16, :24], pooled, atol=1e-6) and not emb[:, 16, 24:].any()
    assert world.encoder.token_span("a photo of a heart", "heart") == (4, 5)
    assert list(world.edit_modules()) == ["transformer.context_embedder"]


def test_generation_draws_the_pipelines_images(world, pipe):
    """FluxPipeline's own loop (sigmas, shift, Euler steps, the guidance scale as an input) from the same
    per-image seeds: the same images."""
    from erasure.sampling import sample
    prompts, seeds = ["a photo of a heart", "a star"], [3, 8]
    latents = sample(world.unet, world.make_scheduler(), world.encoder.encode(prompts), world.null_embedding(),
                     seeds, world.latent_shape, steps=4, guidance=3.5)
    ours = world.decode(latents).astype(int)
    plain = pipe(prompts, num_inference_steps=4, guidance_scale=3.5, height=16, width=16, max_sequence_length=16,
                 output_type="np", generator=[torch.Generator().manual_seed(s) for s in seeds]).images
    assert ours.shape == (2, 16, 16, 3) and np.abs(ours - (plain * 255).round().astype(int)).max() <= 1
    other = sample(world.unet, world.make_scheduler(), world.encoder.encode(prompts), world.null_embedding(),
                   seeds, world.latent_shape, steps=4, guidance=1.0)
    assert not torch.equal(other, latents)          # the guidance scale reaches the transformer


def test_the_closed_form_maps_the_concepts_t5_rows_to_the_anchors(tiny_flux, world, tmp_path):
    """RealEra's closed form on context_embedder: the erase prompt's token states now enter the
    transformer as the anchor's do, and a preserved prompt's barely move."""
    from erasure.config import defaults
    from erasure.edits import apply_edit
    from erasure.world import load_sd
    world_prm = {"world": "sd", "sd": {**defaults("sd"), "model": str(tiny_flux), "dtype": "float32", "resolution": 16}}
    mining = dict(num_neighbors=4, num_beyond=4, d1=0.6, d1_anchor=0.3, d2=3.0, s1=0.999, s2=0.0, data_components=4)
    run_stage("mine", "--params", json.dumps({**world_prm, "concept": "heart", "sampler": "none",
                                              "erase_prompts": ["a heart"], "anchor": "a shape", "mining": mining,
                                              "prompt_bank": [], "seed": 3}),
              "--concept", "heart", "--sampler", "none", "--out", tmp_path / "mine.safetensors")
    prm = {**world_prm, "concept": "heart", "kind": "cf", "pooled": False, "preserve_prompts": ["a star"],
           "regularization": "none", "closed_form": dict(lam=1.0, ridge=0.01, reg_weight=1.0)}
    run_stage("closed_form", "--params", json.dumps(prm), "--method", "cf", "--concept", "heart",
              "--embeddings", tmp_path / "mine.safetensors", "--out", tmp_path / "deltas.safetensors")
    assert list(load_file(tmp_path / "deltas.safetensors")) == ["transformer.context_embedder"]
    heart, shape, star = (world.encoder.encode_tokens([p])[0] for p in ("a heart", "a shape", "a star"))
    layer = world.unet.transformer.context_embedder
    edited = apply_edit(load_sd(str(tiny_flux), resolution=16), str(tmp_path / "deltas.safetensors"))
    new = edited.unet.transformer.context_embedder
    with torch.no_grad():
        word = slice(1, 2)                            # "▁heart" / "▁shape" / "▁star" after "▁a"
        gap = (layer(heart[word]) - layer(shape[word])).norm()
        assert (new(heart[word]) - layer(shape[word])).norm() < 0.2 * gap
        assert (new(star) - layer(star)).norm() < 0.2 * (layer(star) - layer(shape)).norm()


def test_methods_not_built_for_flux_and_eta_stop_at_the_config_check(tiny_flux, tmp_path):
    from erasure.config import load_config
    from erasure.errors import ConfigError
    base = flux_config(tmp_path, tiny_flux)
    (tmp_path / "flux.yaml").write_text(yaml.safe_dump(base))
    load_config([ROOT / "config.yaml", tmp_path / "flux.yaml"])            # the DAG's config passes
    for change, field in (({"run_methods": base["run_methods"] + ["esd_x"]}, "run_methods: 'esd_x'"),
                          ({"run_methods": base["run_methods"] + ["adavd"]}, "run_methods: 'adavd'"),
                          ({"generate": {**base["generate"], "eta": 1.0}}, "generate.eta")):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**base, **change}))
        with pytest.raises(ConfigError, match=f"config field {field}.*Flux"):
            load_config([ROOT / "config.yaml", tmp_path / "bad.yaml"])


def test_flow_matching_noise_and_target(world):
    """The trainers' x_t and target on Flux: x_t = (1 - t / 1000) x0 + (t / 1000) n, target n - x0 (the
    velocity the transformer predicts), from the generator's draws in noised_batch's order."""
    from erasure.sampling import noised_batch
    z0 = torch.randn(3, *world.latent_shape)
    xt, target, t = noised_batch(z0, 4, world.make_train_scheduler(), torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    x0 = z0[torch.randint(3, (4,), generator=gen)]
    noise = torch.randn(x0.shape, generator=gen)
    s = (torch.randint(1000, (4,), generator=gen).float() / 1000).view(-1, 1, 1, 1)
    assert torch.allclose(xt, (1 - s) * x0 + s * noise) and torch.equal(target, noise - x0)


def test_a_lora_file_loads_in_fluxpipeline_as_the_stages_fuse_it(tiny_flux, tmp_path):
    """RealEra's LoRA on Flux (context_embedder) is saved as FluxPipeline writes LoRAs: the pipeline's own
    load_lora_weights and the stages' apply_edit fuse it to the same weights."""
    from diffusers import FluxPipeline
    from erasure.edits import apply_edit
    from erasure.flux import component
    from erasure.lora import add_lora, save_lora
    from erasure.world import load_sd
    world = load_sd(str(tiny_flux), resolution=16)
    host, prefix = component(world.unet)
    with torch.no_grad():
        for p in add_lora(host, 2, 0, list(world.edit_sites)):
            p.add_(0.1)
    save_lora(tmp_path, host, prefix)
    pipe = FluxPipeline.from_pretrained(tiny_flux)
    pipe.load_lora_weights(tmp_path, weight_name="pytorch_lora_weights.safetensors")
    pipe.fuse_lora()
    ours = apply_edit(load_sd(str(tiny_flux), resolution=16), None, tmp_path).unet.transformer.context_embedder.weight
    before = load_sd(str(tiny_flux), resolution=16).unet.transformer.context_embedder.weight
    assert torch.equal(pipe.transformer.context_embedder.weight, ours) and not torch.equal(ours, before)


def flux_config(tmp_path, model) -> dict:
    """The objects task on the tiny Flux: the unedited model, RealEra (closed form and LoRA) and concept
    inversion on RealEra. UCE, RECE, SepME, UnlearnDiffAtk, Ring-A-Bell and revival run on the tiny Flux
    in the GPU check's test (tests/test_gpu_check.py)."""
    config = tiny_objects_config(tmp_path, {"model": str(model), "dtype": "bfloat16", "resolution": 64})
    config["run_methods"] = ["original", "realera"]
    config["generate"].update(eta=0.0, guidance=3.5)
    config["lora"]["anchor_steps"] = 2
    config["attacks"] = {"run": ["inversion"], "methods": ["realera"], "templates": ["a {}"], "images_per_prompt": 2,
                         "inversion": {"steps": 2, "batch_size": 2, "target_images": 2}}
    config["export"] = {"methods": ["realera"]}
    return config


@pytest.mark.slow
def test_the_dag_runs_on_a_tiny_flux_and_its_export_draws_the_same_images(tiny_flux, tmp_path):
    rows = run_dag(tmp_path, flux_config(tmp_path, tiny_flux))
    out = tmp_path / "out"
    assert sorted(rows) == ["original", "realera"] and all(r["n_images"] for r in rows.values())
    assert list(load_file(out / "edit/realera/heart.safetensors")) == ["transformer.context_embedder"]
    lora = load_file(out / "lora/realera/heart/pytorch_lora_weights.safetensors")
    assert sorted(lora) == ["transformer.context_embedder.lora_A.weight", "transformer.context_embedder.lora_B.weight"]
    with open(out / "report/robustness.csv", newline="") as f:
        attacked = {(r["method"], r["attack"]) for r in csv.DictReader(f)}
    assert attacked == {("realera", "inversion")}
    card = (out / "export/realera/heart/README.md").read_text()
    assert "flow-matching Euler" in card and "eta=" not in card   # FluxPipeline takes no eta
    # The deliverable: plain diffusers loads the export (closed form and LoRA fused) and draws the generate
    # stage's images.
    from diffusers import FluxPipeline
    export = FluxPipeline.from_pretrained(out / "export/realera/heart", torch_dtype=torch.bfloat16)
    with open(out / "images/realera/heart.csv", newline="") as f:
        first = next(csv.DictReader(f))
    image = export(first["prompt"], num_inference_steps=2, guidance_scale=3.5, height=64, width=64,
                   max_sequence_length=16, output_type="np",
                   generator=torch.Generator().manual_seed(int(first["seed"]))).images[0]
    ours = np.asarray(Image.open(first["file"]).convert("RGB")).astype(int)
    # Not bit-equal: the stages run the text encoders in float32 (world.py), the pipeline in bfloat16.
    assert np.abs(ours - (image * 255).round().astype(int)).max() <= 8


def test_flux_1_dev_at_full_size_runs_through_the_world_on_the_meta_device():
    """FLUX.1-dev's shapes (no weights, no memory): the denoiser packs a 1024 px latent into 4,096 patch
    tokens beside 512 T5 tokens and unpacks the velocity; the edit site is the one 4096 -> 3072 map; CLIP's
    pooled vector fits in a T5 row."""
    from tiny_sd import full_size_flux_parts
    from erasure.flux import FluxDenoiser
    from erasure.world import FLUX_EDIT_SITES
    with torch.device("meta"):
        transformer, t5, clip, vae = full_size_flux_parts()
        denoiser = FluxDenoiser(transformer, clip.config.hidden_size)
        velocity = denoiser(torch.randn(2, 16, 128, 128), torch.tensor(500.0), torch.randn(2, 512 + 1, 4096), 3.5).sample
        sites = {n: m for n, m in denoiser.named_modules() if n.endswith(FLUX_EDIT_SITES)}
    assert velocity.shape == (2, 16, 128, 128)
    assert sum(p.numel() for p in transformer.parameters()) > 11.8e9
    assert list(sites) == ["transformer.context_embedder"] and sites["transformer.context_embedder"].weight.shape == (3072, 4096)
    assert t5.config.d_model == transformer.config.joint_attention_dim == 4096
    assert clip.config.hidden_size == transformer.config.pooled_projection_dim == 768
