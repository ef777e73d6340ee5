"""MACE (erasure/mace.py): token alignment, the refinement's formula, the attention-loss LoRA, the fusion's
defining property (each concept keeps its own LoRA's effect), and the stage."""
import json

import pytest
import torch
import yaml
from conftest import ROOT, filled_config, run_stage, sd_params
from safetensors.torch import load_file

from erasure import mace
from erasure.config import defaults
from erasure.world import load_miniworld, load_world_from_params


def test_matching_positions_keep_the_common_prefix_and_suffix():
    # start, "a", <concept: 2 tokens>, "photo", end  vs  start, "a", <anchor: 1 token>, "photo", end
    old, new = [101, 1, 50, 51, 7, 102], [101, 1, 60, 7, 102]
    assert mace.matching_positions(old, new) == ([0, 1, 4, 5], [0, 1, 3, 4])
    assert mace.matching_positions([5, 6], [5, 6]) == ([0, 1], [0, 1])        # identical: every position
    assert mace.matching_positions([101, 9, 102], [101, 8, 102]) == ([0, 2], [0, 2])


def test_extended_positions_run_tail_aligned_to_the_padded_length():
    old, new = mace.extended_positions([0, 1, 4, 5], [0, 1, 3, 4], 8)
    assert old == [0, 1, 4, 5, 6, 7] and new == [0, 1, 3, 4, 5, 6]       # the later one runs to the end
    old, new = mace.extended_positions([0, 3], [0, 5], 8)
    assert old == [0, 3, 4, 5] and new == [0, 5, 6, 7]
    assert len(old) == len(new)


def test_refinement_is_the_references_formula():
    """W0 M equals (lamb W0 + sum W0 a c^T + s sum W0 p p^T)(lamb I + sum c c^T + s sum p p^T)^-1, written
    here per layer from the paper's formula, for the mini world's aligned rows."""
    world = load_miniworld(ROOT / "weights/miniworld")
    cfg = {**defaults("mace"), "lamb": 10.0, "train_preserve_scale": 0.5, "preserve_weight": 2.0}
    erase, anchor = ["a photo of heart", "heart"], ["a photo of a shape", "a shape"]
    preserve = world.encoder.encode(["a circle"]).flatten(0, 1).double()
    m, _, n_rows = mace.refinement(world.encoder, erase, anchor, preserve, cfg)
    c, a = mace.aligned_rows(world.encoder, erase, anchor)
    assert n_rows == len(c) == len(a)
    w0 = next(iter(world.edit_modules().values())).weight.detach().double()
    eye = torch.eye(w0.shape[1], dtype=torch.float64)
    left = 10.0 * w0 + (w0 @ a.T) @ c + 1.0 * (w0 @ preserve.T) @ preserve
    right = 10.0 * eye + c.T @ c + 1.0 * preserve.T @ preserve
    expected = left @ torch.linalg.inv(right)
    assert torch.allclose(w0 @ m, expected, rtol=1e-8, atol=1e-10)


def test_concept_positions_mark_the_concept_and_the_end_token():
    world = load_miniworld(ROOT / "weights/miniworld")
    ids = world.encoder.tokenize(["a photo of heart"])["input_ids"][0].tolist()
    heart = world.encoder.tokenizer("heart", add_special_tokens=False)["input_ids"]
    end = world.encoder.tokenizer.sep_token_id
    with_end = mace.concept_positions(world.encoder, ["a photo of heart"], "heart", use_pooler=True)[0]
    without = mace.concept_positions(world.encoder, ["a photo of heart"], "heart", use_pooler=False)[0]
    assert [ids[i] for i in without.nonzero().flatten().tolist()] == heart
    assert sorted(set(ids[i] for i in with_end.nonzero().flatten().tolist())) == sorted(set(heart + [end]))


def _miniworld_inputs(world):
    torch.manual_seed(0)
    x = torch.randn(1, *world.latent_shape)
    return x, torch.tensor([300]), world.encoder.encode(["a photo of heart"]).clone()   # not an inference tensor


def test_the_loss_processor_with_a_zero_lora_is_the_models_own_attention():
    world = load_miniworld(ROOT / "weights/miniworld")
    x, t, cond = _miniworld_inputs(world)
    with torch.no_grad():
        plain = world.unet(x, t, cond).sample
    recorder = {"positions": mace.concept_positions(world.encoder, ["a photo of heart"], "heart", True), "losses": []}
    layers = {n: m for n, m in world.unet.named_modules() if n.endswith("attn2")}
    procs = {n: mace.AttentionLossProcessor(m, 1, recorder, torch.Generator().manual_seed(0)) for n, m in layers.items()}
    for n, m in layers.items():
        m.set_processor(procs[n])
    out = world.unet(x, t, cond).sample
    assert torch.allclose(out, plain, atol=1e-5)
    assert len(recorder["losses"]) == len(layers) and all(v > 0 for v in recorder["losses"])
    torch.stack(recorder["losses"]).sum().backward()
    assert any(p.k_up.grad.abs().max() > 0 for p in procs.values())   # the loss reaches the LoRA


def test_training_lowers_the_attention_paid_to_the_concept():
    """With a learning rate far above MACE's (to see the direction in a few steps), the attention loss falls;
    the UNet's own weights are untouched and its processors restored."""
    world = load_miniworld(ROOT / "weights/miniworld")
    world.unet.requires_grad_(False)
    before = {k: v.clone() for k, v in world.unet.state_dict().items()}
    prompts = ["a photo of heart", "heart"]
    z0 = torch.randn(2, *world.latent_shape, generator=torch.Generator().manual_seed(1))
    cfg = {**defaults("mace"), "lr": 0.05, "steps": 40, "importance_sampling": False}
    deltas, losses = mace.train_lora(world.unet, world.make_train_scheduler(), z0, world.encoder.encode(prompts),
                                     mace.concept_positions(world.encoder, prompts, "heart", True), cfg,
                                     torch.Generator().manual_seed(2))
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])
    assert set(deltas) == set(world.edit_modules())
    assert all(torch.equal(v, before[k]) for k, v in world.unet.state_dict().items())
    assert not any(isinstance(m.processor, mace.AttentionLossProcessor)
                   for n, m in world.unet.named_modules() if n.endswith("attn2"))


def test_importance_weights_are_the_references_sigmoid_window():
    """sigmoid(0.05 (t - 200)) - sigmoid(0.05 (t - 400)): half height at 200 and 400, near 1 at 300."""
    w = mace.importance_weights(1000)
    assert abs(w[200].item() - 0.5) < 1e-4 and abs(w[400].item() - 0.5) < 1e-4
    assert abs(w[300].item() - 0.98661) < 1e-4 and w[0].item() < 1e-4 and w[999].item() < 1e-12


def test_fusion_keeps_each_concepts_own_lora_effect_on_its_own_rows():
    """Two concepts, rows spanning independent subspaces: with a small lamb the fused weights map each
    concept's rows as its own LoRA-fused weights do (the property MACE's fusion is built for)."""
    g = torch.Generator().manual_seed(0)
    d, out = 24, 10
    w0 = torch.randn(out, d, generator=g, dtype=torch.float64)
    w_cfr = w0 + 0.1 * torch.randn(out, d, generator=g, dtype=torch.float64)
    loras = [{"l": torch.randn(out, 1, generator=g, dtype=torch.float64) @ torch.randn(1, d, generator=g, dtype=torch.float64)}
             for _ in range(2)]
    contexts = [torch.randn(6, d, generator=g, dtype=torch.float64) for _ in range(2)]
    cfg = {**defaults("mace"), "lamb": 1e-9}
    fused = mace.fuse({"l": w_cfr}, {"l": w0}, loras, contexts, torch.zeros(0, d, dtype=torch.float64), cfg)["l"]
    for lora, c in zip(loras, contexts):
        own = c @ (w_cfr + lora["l"]).T
        assert (c @ fused.T - own).norm() < 1e-5 * own.norm()   # lamb 1e-9: a solve of condition ~1e9
    other = torch.randn(3, d, generator=g, dtype=torch.float64)
    assert (other @ fused.T - other @ w_cfr.T).norm() > 1e-3   # fusion is not the identity elsewhere


def _stage_config(tmp_path, **mace_settings):
    config = filled_config()
    config["out_dir"] = str(tmp_path)
    config["miniworld"]["weights"] = str(ROOT / "weights/miniworld")
    config["concepts_file"] = str(ROOT / config["concepts_file"])
    config["generate"].update(steps=4)
    config["mace"].update(steps=3, images=2, **mace_settings)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_stage_writes_every_projection_and_is_reproducible(tmp_path):
    path = _stage_config(tmp_path)
    out, again = tmp_path / "mace.safetensors", tmp_path / "again.safetensors"
    for target in (out, again):
        run_stage("mace", "--config", path, "--method", "mace", "--concept", "heart", "--out", target)
    world = load_miniworld(ROOT / "weights/miniworld")
    deltas = load_file(out)
    assert set(deltas) == set(world.edit_modules()) and all(torch.isfinite(d).all() for d in deltas.values())
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert len(sidecar["lora_losses"]) == 3 and sidecar["mapping"] == yaml.safe_load(path.read_text())["anchor"]
    assert out.read_bytes() == again.read_bytes()


def test_stage_without_the_lora_is_the_refinement_alone(tmp_path):
    path = _stage_config(tmp_path)
    out = tmp_path / "cfr.safetensors"
    run_stage("mace", "--config", path, "--method", "mace_cfr", "--concept", "heart", "--out", out)
    prm = json.loads(out.with_suffix(".json").read_text())
    world = load_miniworld(ROOT / "weights/miniworld")
    erase = [t.format("heart") for t in prm["mace"]["templates"]]
    anchor = [t.format(prm["mapping"]) for t in prm["mace"]["templates"]]
    preserve = world.encoder.encode(prm["preserve_prompts"]).flatten(0, 1).double()
    m, _, _ = mace.refinement(world.encoder, erase, anchor, preserve, prm["mace"])
    for name, delta in load_file(out).items():
        w0 = world.edit_modules()[name].weight.detach().double()
        assert torch.allclose(delta.double(), (w0 @ m - w0).float().double(), atol=1e-6), name
    assert prm["lora_losses"] == []


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_stage_on_a_half_precision_sd(tiny_sd, tmp_path, dtype):
    world = sd_params(tiny_sd, dtype)
    prm = {**world, "concept": "heart", "mapping": "a shape", "preserve_prompts": ["a circle"],
           "image_prompt": "a photo of heart", "generate": {"steps": 2, "guidance": 7.5, "eta": 0.0, "sampler": None},
           "attention_lora": True, "mace": {**defaults("mace"), "steps": 2, "images": 1}, "seed": 3}
    out = tmp_path / "mace.safetensors"
    run_stage("mace", "--params", json.dumps(prm), "--method", "mace", "--concept", "heart", "--out", out)
    deltas = load_file(out)
    modules = load_world_from_params(world).edit_modules()
    assert set(deltas) == set(modules)
    assert all(d.dtype == getattr(torch, dtype) and torch.isfinite(d).all() for d in deltas.values())
    assert any(d.abs().max() > 0 for d in deltas.values())
