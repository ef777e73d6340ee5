"""AdaVD (erasure/adavd.py): the value-space projection, its processor, its stage and its edit file."""
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, filled_config, run_stage, sd_params

from erasure import adavd
from erasure.config import ConfigError, defaults, load_config
from erasure.edits import apply_edit
from erasure.world import load_miniworld, load_world_from_params

NO_SHIFT = {**defaults("adavd"), "shift": False}
SHIFT = {**defaults("adavd"), "shift": True}


def _erase(v, t, settings):
    q, p = adavd.gram_schmidt(t)
    return adavd.erase_values(v, t, q, p, settings)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_without_the_shift_every_token_but_the_first_loses_exactly_its_component_in_the_concepts_span(n):
    torch.manual_seed(n)
    v, t = torch.randn(2, 7, 24, dtype=torch.float64), torch.randn(n, 24, dtype=torch.float64)
    out = _erase(v, t, NO_SHIFT).double()
    assert torch.equal(out[:, 0], v[:, 0])                               # the start token is kept
    assert (out[:, 1:] @ t.T).abs().max() < 1e-4                         # nothing left along any concept
    removed = (v - out)[:, 1:].reshape(-1, 24)
    in_span = removed @ torch.linalg.pinv(t) @ t                         # its projection onto span(t)
    assert (removed - in_span).abs().max() < 1e-4                        # and nothing else changes


def test_a_value_orthogonal_to_the_concept_is_untouched():
    torch.manual_seed(0)
    t = torch.randn(1, 16)
    v = torch.randn(1, 5, 16)
    v = v - (v @ t.T) / (t @ t.T) * t
    for settings in (NO_SHIFT, SHIFT):
        assert torch.allclose(_erase(v, t, settings), v, atol=1e-5)


def _reference_single(v, t, a, b, c):
    """The reference's one-concept decomposition (src/main.py, cal_ortho_decomp), written from its formula:
    weight = c / (1 + exp(-a (cos - b))) * <v, t> / <t, t> per token, 0 at the start token."""
    out = v.clone()
    for i in range(v.shape[0]):
        for l in range(1, v.shape[1]):
            cos = F.cosine_similarity(v[i, l], t[0], dim=0)
            weight = c / (1 + torch.exp(-a * (cos - b))) * (v[i, l] @ t[0]) / (t[0] @ t[0])
            out[i, l] = v[i, l] - weight * t[0]
    return out


def test_the_shift_follows_the_reference_formula():
    torch.manual_seed(1)
    t = torch.randn(1, 32, dtype=torch.float64)
    # tokens at cosines across the sigmoid's rise (about 0.85 to 1), where the shift matters
    v = torch.stack([t[0] + s * torch.randn(32, dtype=torch.float64) for s in torch.linspace(0.05, 0.6, 12)])[None]
    ours = _erase(v, t, SHIFT).double()
    ref = _reference_single(v, t, 100.0, 0.93, 2.0)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5)
    shifts = F.cosine_similarity(v[0], t, dim=-1)
    assert shifts.min() < 0.9 < 0.95 < shifts.max()   # the test spans both sides of b


def _value_erasing(linear, t, settings):
    """to_v followed by the erasure, as a module: diffusers' own processor then attends to erased values."""
    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = linear

        def forward(self, x):
            return _erase(self.inner(x), t, settings)
    return Wrapped()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_processor_equals_diffusers_attention_over_erased_values(tiny_sd, dtype):
    from diffusers.models.attention_processor import AttnProcessor2_0
    world = load_world_from_params(sd_params(tiny_sd, dtype))
    name, attn = next(iter(adavd.cross_attentions(world.unet).items()))
    torch.manual_seed(0)
    hidden = torch.randn(2, 9, attn.to_q.in_features).to(attn.to_q.weight.dtype)
    context = torch.randn(2, 16, attn.to_k.in_features).to(attn.to_q.weight.dtype)
    t = attn.to_v(torch.randn(1, attn.to_v.in_features).to(attn.to_q.weight.dtype)).float()
    with torch.no_grad():
        ours = adavd.AdaVDProcessor(t, NO_SHIFT)(attn, hidden, context)
        to_v, attn.to_v = attn.to_v, _value_erasing(attn.to_v, t, NO_SHIFT)
        theirs = AttnProcessor2_0()(attn, hidden, context)
        attn.to_v = to_v
        untouched = AttnProcessor2_0()(attn, hidden, context)
        zero_shift = adavd.AdaVDProcessor(t, {**SHIFT, "sigmoid_c": 0.0})(attn, hidden, context)
    tol = 1e-5 if dtype == "float32" else 2e-3
    assert torch.allclose(ours.float(), theirs.float(), atol=tol)
    assert not torch.allclose(ours.float(), untouched.float(), atol=tol)
    assert torch.allclose(zero_shift.float(), untouched.float(), atol=tol)   # shift 0: the model as it was


def test_stage_writes_the_concept_embedding_and_apply_edit_installs_a_processor_on_every_cross_attention(tmp_path):
    config = filled_config()
    config["miniworld"]["weights"] = str(ROOT / "weights/miniworld")
    prm = {"world": "miniworld", "miniworld": config["miniworld"], "concept": "heart", "target_concepts": ["heart"],
           "adavd": SHIFT}
    out = tmp_path / "heart.safetensors"
    run_stage("adavd", "--params", json.dumps(prm), "--method", "adavd", "--concept", "heart", "--out", out)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["target_tokens"] == ["heart"]

    plain, edited = load_miniworld(prm["miniworld"]["weights"]), load_miniworld(prm["miniworld"]["weights"])
    apply_edit(edited, out)
    layers = adavd.cross_attentions(edited.unet)
    assert layers and all(isinstance(m.processor, adavd.AdaVDProcessor) for m in layers.values())
    assert all(torch.equal(a, b) for a, b in zip(plain.unet.state_dict().values(), edited.unet.state_dict().values()))
    assert all(m.processor.settings == SHIFT for m in layers.values())

    torch.manual_seed(0)
    x, t = torch.randn(1, *plain.latent_shape), torch.tensor([500])
    def eps(world, prompt):
        return world.unet(x, t, world.encoder.encode([prompt])).sample
    assert (eps(plain, "a heart") - eps(edited, "a heart")).abs().max() > 1e-3


def test_stage_on_a_half_precision_sd(tiny_sd, tmp_path):
    world = sd_params(tiny_sd, "float16")
    out = tmp_path / "heart.safetensors"
    run_stage("adavd", "--params", json.dumps({**world, "concept": "heart", "target_concepts": ["heart"],
                                               "adavd": NO_SHIFT}),
              "--method", "adavd", "--concept", "heart", "--out", out)
    plain, edited = load_world_from_params(world), apply_edit(load_world_from_params(world), out)
    torch.manual_seed(0)
    x = torch.randn(1, *plain.latent_shape, dtype=torch.float16)
    cond = plain.encoder.encode(["a heart"]).half()
    with torch.no_grad():
        a, b = plain.unet(x, torch.tensor([500]), cond).sample, edited.unet(x, torch.tensor([500]), cond).sample
    assert b.dtype == torch.float16 and torch.isfinite(b).all() and (a - b).abs().max() > 0


def test_an_adavd_method_cannot_be_exported():
    config = filled_config()
    config["run_methods"] = ["original", "adavd"]
    config["export"]["methods"] = ["adavd"]
    with pytest.raises(ConfigError, match="export.methods.*inference time"):
        load_config(config)
