"""UCE and ESD baselines: UCE's token choices and its published closed form; ESD's parameter sets,
training and how its deltas apply."""
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import filled_config, ROOT, run_stage, sd_params
from erasure import esd, uce
from erasure.closed_form import mixing_matrix
from erasure.config import defaults


def test_uce_last_token_rows(minilm):
    prompts = ["a heart", "photo of heart"]
    erase, targets, preserve = uce.rows(minilm, prompts, "", ["a star", "a ring"], "last")
    emb = minilm.encode(prompts + ["", "a star"])
    # [CLS] a heart [SEP]: the last token before [SEP] is "heart"; for "" it is [CLS]
    assert torch.equal(erase[0], emb[0, 2]) and torch.equal(erase[1], emb[1, 3])
    assert torch.equal(targets[0], emb[2, 0]) and torch.equal(targets[1], emb[2, 0])
    assert preserve.shape == (2, emb.shape[-1]) and torch.equal(preserve[0], emb[3, 2])


def test_uce_tail_rows_are_tail_aligned(minilm):
    erase, targets, preserve = uce.rows(minilm, ["photo of heart"], "a shape", ["a star"], "tail")
    emb = minilm.encode(["photo of heart", "a shape"])
    length = emb.shape[1]
    k, g = 3, 2   # last subject token of each prompt
    n = length - max(k, g)
    assert erase.shape[0] == n
    assert torch.equal(erase, emb[0, k:k + n]) and torch.equal(targets, emb[1, g:g + n])
    assert preserve.shape[0] == length   # every token of the preserve prompt


def test_uce_solution_is_the_papers_formula():
    gen = torch.Generator().manual_seed(0)
    d, out = 16, 12
    c, g, p = (torch.randn(n, d, generator=gen, dtype=torch.float64) for n in (5, 5, 30))
    w0 = torch.randn(out, d, generator=gen, dtype=torch.float64)
    lamb, s_e, s_p = 0.5, 1.5, 0.7
    m, _ = mixing_matrix(c, g, p, s_p, lamb, erase_weights=torch.full((5,), s_e))
    left = lamb * w0 + s_e * (w0 @ g.T) @ c + s_p * (w0 @ p.T) @ p
    right = lamb * torch.eye(d, dtype=torch.float64) + s_e * c.T @ c + s_p * p.T @ p
    assert torch.allclose(w0 @ m, left @ torch.linalg.inv(right), rtol=1e-9, atol=1e-9)


def test_esd_parameter_sets_follow_the_reference_codes():
    from erasure.world import load_miniworld
    unet = load_miniworld(ROOT / "weights/miniworld").unet
    every = [n for n, _ in unet.named_parameters()]
    x, u = esd.trainable_names(unet, "xattn"), esd.trainable_names(unet, "unet")
    assert x and u and all(".attn2." in n for n in x) and not any(".attn2." in n for n in u)
    assert set(x) | set(u) == set(every)
    # 2025 (esd-u): Linear and Conv2d layers outside cross-attention; no norm, the time embedding's layers in
    linear = esd.trainable_names(unet, "linear")
    norms = {f"{n}.{p}" for n, m in unet.named_modules() if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm))
             for p, _ in m.named_parameters(recurse=False)}
    assert norms and set(linear) == set(u) - norms
    assert "time_embedding.linear_1.weight" in linear and "conv_out.weight" in linear
    # 2023 (noxattn): outside cross-attention, the time embedding and the output layers; norms in
    noxattn = esd.trainable_names(unet, "noxattn")
    assert {n for n in u if n.startswith(("time_embedding.", "conv_norm_out.", "conv_out."))} == set(u) - set(noxattn)
    assert norms - set(noxattn) == {"conv_norm_out.weight", "conv_norm_out.bias"}
    assert all(names == [n for n in every if n in set(names)] for names in (linear, noxattn))   # UNet order


@pytest.mark.parametrize("method,part", [("esd_x", ".attn2."), ("esd_u", None)])
def test_esd_stage_trains_only_its_parameters(tmp_path, method, part):
    config = filled_config()
    config["esd"].update(iterations=3, batch_size=2, ddim_steps=4)
    config["out_dir"] = str(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / f"{method}.safetensors"
    run_stage("train_esd", "--config", path, "--method", method, "--concept", "heart", "--out", out)
    deltas = load_file(out)
    changed = [n for n, d in deltas.items() if d.abs().max() > 0]
    assert changed
    assert all((part in n) if part else (".attn2." not in n) for n in deltas)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["iterations_run"] == 3 and sidecar["train"] == ("xattn" if part else "unet")
    if part:   # seeded from the config: a second run trains the same deltas
        run_stage("train_esd", "--config", path, "--method", method, "--concept", "heart", "--out", tmp_path / "again.safetensors")
        again = load_file(tmp_path / "again.safetensors")
        assert again.keys() == deltas.keys() and all(torch.equal(again[k], deltas[k]) for k in deltas)

    # The deltas apply by parameter name through the same path the generate stage uses.
    from erasure.edits import apply_edit
    from erasure.world import load_miniworld
    world = load_miniworld(ROOT / "weights/miniworld")
    before = {n: p.detach().clone() for n, p in world.unet.named_parameters()}
    apply_edit(world, out)
    after = dict(world.unet.named_parameters())
    for n, d in deltas.items():
        assert torch.allclose(after[n], before[n] + d)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_esd_trains_a_half_precision_sd_at_the_references_batch_size(tiny_sd, tmp_path, dtype):
    # The SD task configs load the model in float16; the references train ESD at batch size 1.
    prm = {**sd_params(tiny_sd, dtype), "concept": "heart",
           "train": "xattn", "prompt": "a heart", "seed": 0,
           "esd": {**defaults("esd"), "iterations": 2, "batch_size": 1, "ddim_steps": 2}}
    out = tmp_path / "esd.safetensors"
    run_stage("train_esd", "--params", json.dumps(prm), "--out", out)
    deltas = load_file(out)
    assert deltas and all(d.dtype == torch.float32 for d in deltas.values())   # float32 master weights
    assert any(d.abs().max() > 0 for d in deltas.values())
    assert all(torch.isfinite(d).all() for d in deltas.values())


def test_rece_adversarial_embedding_regenerates_the_concept_better_than_its_own_embedding():
    """RECE step 1: with the unedited weights it returns the concept's own embedding; after an edit it
    returns an embedding whose keys/values under the edit are closer to the unedited ones of the concept."""
    from erasure import rece
    gen = torch.Generator().manual_seed(0)
    w0 = {f"l{i}": torch.randn(6, 4, generator=gen, dtype=torch.float64) for i in range(3)}
    c = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    assert torch.allclose(rece.adversarial_embedding(w0, w0, c, 1e-9), c, atol=1e-6)
    edited = {k: w @ (torch.eye(4, dtype=torch.float64) + 0.5 * torch.randn(4, 4, generator=gen, dtype=torch.float64))
              for k, w in w0.items()}
    adv = rece.adversarial_embedding(edited, w0, c, 1e-3)

    def miss(e):
        return sum(((e @ edited[k].T - c @ w0[k].T) ** 2).sum() for k in w0).item()

    stacked, target = torch.cat([edited[k] for k in w0]), torch.cat([c @ w0[k].T for k in w0], dim=1)
    best = torch.linalg.lstsq(stacked, target.T).solution.T   # the unregularized least-squares rows
    assert torch.allclose(adv, best, atol=1e-3) and miss(adv) < 0.5 * miss(c)


def test_rece_round_maps_the_adversarial_rows_toward_the_guide_and_keeps_the_preserved():
    from erasure import rece
    gen = torch.Generator().manual_seed(1)
    weights = {"l0": torch.randn(8, 6, generator=gen, dtype=torch.float64)}
    adv, guide = torch.randn(3, 6, generator=gen, dtype=torch.float64), torch.randn(3, 6, generator=gen, dtype=torch.float64)
    keep = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    # 5 rows in 6 dimensions: with heavy row weights the solve meets both sets almost exactly.
    cfg = {"lamb": 0.1, "erase_scale": 1000.0, "preserve_scale": 1000.0}
    new, _ = rece.erase_step(weights, adv, guide, keep, cfg)
    w, w1 = weights["l0"], new["l0"]
    assert (adv @ w1.T - guide @ w.T).norm() < 0.01 * (adv @ w.T - guide @ w.T).norm()
    assert (keep @ w1.T - keep @ w.T).norm() < 0.01 * (keep @ w.T).norm()


def test_rece_stage_starts_from_the_uce_edit_and_leaves_its_adversarial_embedding_powerless(tmp_path):
    """After the rounds, the embedding RECE would find next regenerates the concept's unedited keys and
    values worse than the one it found against UCE alone did."""
    from erasure import rece
    from erasure.closed_form import apply_deltas
    from erasure.world import load_miniworld
    config = filled_config()
    config["out_dir"] = str(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    base, out = tmp_path / "uce.safetensors", tmp_path / "rece.safetensors"
    run_stage("closed_form", "--config", path, "--method", "uce", "--concept", "heart", "--out", base)
    run_stage("rece", "--config", path, "--method", "rece", "--concept", "heart", "--base", base, "--out", out)
    assert set(load_file(out)) == set(load_file(base))
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert len(sidecar["rounds"]) == config["rece"]["epochs"] and sidecar["base"] == "uce"

    world = load_miniworld(ROOT / "weights/miniworld")
    modules = world.edit_modules()
    w0 = {n: m.weight.detach().clone() for n, m in modules.items()}
    c = world.encoder.encode(["heart"])[0].double()

    def regenerated_miss(deltas_file):
        weights = {n: w0[n] + d for n, d in load_file(deltas_file).items()}
        adv = rece.adversarial_embedding(weights, w0, c, config["rece"]["regular_scale"])
        return sum(((adv @ weights[n].double().T - c @ w0[n].double().T) ** 2).sum() for n in w0).item()

    assert regenerated_miss(out) > regenerated_miss(base)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_rece_edits_a_half_precision_sd(tiny_sd, tmp_path, dtype):
    """RECE on the tiny SD loaded in half precision: the solves run in float64, the deltas come back in
    the model's dtype and are finite."""
    from erasure import io
    world = sd_params(tiny_sd, dtype)
    base = tmp_path / "uce.safetensors"
    from erasure.world import load_world_from_params
    modules = load_world_from_params(world).edit_modules()
    io.save_safetensors({n: torch.zeros_like(m.weight) for n, m in modules.items()}, base)   # UCE's edit: none
    prm = {**world, "concept": "heart", "base": "uce", "guide": "", "preserve_prompts": ["a circle"],
           "rece": {**defaults("rece"), "epochs": 2}}
    out = tmp_path / "rece.safetensors"
    run_stage("rece", "--params", json.dumps(prm), "--method", "rece", "--concept", "heart", "--base", base, "--out", out)
    deltas = load_file(out)
    assert set(deltas) == set(modules) and all(d.dtype == getattr(torch, dtype) for d in deltas.values())
    assert all(torch.isfinite(d).all() for d in deltas.values()) and any(d.abs().max() > 0 for d in deltas.values())


# The two UCE reference codes, re-derived here from their published algorithm on a diffusers model
# (trainscripts/uce_sd_erase.py of 2025, train-scripts/train_erase.py edit_model of 2023), independently
# of erasure/uce.py and erasure/closed_form.py, in float64.
def _tokens(tokenizer, text_encoder, prompt):
    t = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                  return_tensors="pt")
    with torch.no_grad():
        emb = text_encoder(t.input_ids)[0][0].double()
    return emb, int(t.attention_mask.sum()) - 2   # all token embeddings, the last subject token's position


def _last_token(tokenizer, text_encoder, prompt):
    emb, k = _tokens(tokenizer, text_encoder, prompt)
    return emb[k]


def reference_uce_2025(tok, enc, w, erase, guide, preserve, lamb, s_e, s_p):
    mat1, mat2 = lamb * w, lamb * torch.eye(w.shape[1], dtype=torch.float64)
    for prompt, target, scale in [(e, guide, s_e) for e in erase] + [(p, p, s_p) for p in preserve]:
        c = _last_token(tok, enc, prompt)
        v = w @ _last_token(tok, enc, target)
        mat1, mat2 = mat1 + scale * torch.outer(v, c), mat2 + scale * torch.outer(c, c)
    return mat1 @ torch.linalg.inv(mat2)


def reference_uce_2023(tok, enc, w, erase, guide, preserve, lamb, s_e):
    retain = [""] + preserve                     # the 2023 code always starts its retain set with ""
    s_p = max(0.1, 1 / len(retain))              # its preserve scale when none is given
    mat1, mat2 = lamb * w, lamb * torch.eye(w.shape[1], dtype=torch.float64)
    for prompt in erase:
        (old, k_old), (new, k_new) = _tokens(tok, enc, prompt), _tokens(tok, enc, guide or " ")
        far, n = max(k_old, k_new), len(old)
        old, new = old[k_old:n - max(0, far - k_old)], new[k_new:n - max(0, far - k_new)]
        mat1, mat2 = mat1 + s_e * (w @ new.T) @ old, mat2 + s_e * old.T @ old
    for prompt in retain:
        emb, _ = _tokens(tok, enc, prompt)
        mat1, mat2 = mat1 + s_p * (w @ emb.T) @ emb, mat2 + s_p * emb.T @ emb
    return mat1 @ torch.linalg.inv(mat2)


@pytest.mark.parametrize("method", ["uce_2025", "uce_2023"])
def test_uce_stage_reproduces_the_reference_code_on_a_tiny_sd(method, tiny_sd, tmp_path):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer
    from erasure import params
    from erasure.config import load_config
    config = filled_config()
    config.update(world="sd", sd={"model": str(tiny_sd), "dtype": "float32"}, prompt_template="a {}", anchor="a shape",
                  concepts_file=str(ROOT / config["concepts_file"]), miniworld={"weights": str(ROOT / "weights/miniworld")})
    config = load_config(config)
    prm = params.closed_form(config, method, "heart")
    out = tmp_path / "deltas.safetensors"
    run_stage("closed_form", "--params", json.dumps(prm), "--method", method, "--concept", "heart", "--out", out)
    deltas = load_file(out)
    tok = CLIPTokenizer.from_pretrained(tiny_sd, subfolder="tokenizer")
    enc = CLIPTextModel.from_pretrained(tiny_sd, subfolder="text_encoder").eval()
    unet = UNet2DConditionModel.from_pretrained(tiny_sd, subfolder="unet")
    u = config["uce"]
    preserve = params.preserve_prompts(config, "heart")
    assert prm["erase_prompts"] == ["a heart"] and prm["preserve_prompts"] == ([""] if method == "uce_2023" else []) + preserve
    edited = {n for n, m in unet.named_modules() if "attn2" in n and n.endswith(("to_k", "to_v"))}
    assert set(deltas) == edited
    for name in edited:
        w = unet.get_submodule(name).weight.detach().double()
        if method == "uce_2025":
            want = reference_uce_2025(tok, enc, w, ["a heart"], u["guide"], preserve, u["lamb"], u["erase_scale"],
                                      u["preserve_scale"])
        else:
            want = reference_uce_2023(tok, enc, w, ["a heart"], u["guide"], preserve, u["lamb"], u["erase_scale"])
        # ours solves in float64 and stores the delta in the model's float32
        err = (deltas[name].double() - (want - w)).norm() / (want - w).norm()
        assert err < 1e-6, (name, err.item())
