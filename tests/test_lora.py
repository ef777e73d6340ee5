"""LoRA's condition sampler (RealEra Eq. 8 and 9) on small random token sets."""
import pytest
import torch

from erasure.lora import ConditionSampler
from conftest import sd_params

MINING = dict(d1=0.6, d1_anchor=0.3, d2=3.0, s1=0.999, s2=0.3)


def sampler(preserve, regularization="paper", mining=MINING):
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 6, 8, generator=gen)
    entry = {"erase": tokens[0, 2:4], "anchor": tokens[1, 2:4], "span_start": 2, "anchor_start": 2}
    return ConditionSampler(tokens[:1], tokens[1:], entry, mining, regularization, preserve, gen), tokens


def test_eq9_mixes_preserve_prompts_and_beyond_samples():
    preserve = torch.randn(3, 6, 8)
    s, tokens = sampler(preserve)
    cond = s.preserve_conditions(4)
    # half the batch: beyond samples in the erase prompt's span, the rest of it kept; half: preserve prompts
    assert torch.equal(cond[:2, :2], tokens[0, :2].expand(2, -1, -1))
    assert not torch.equal(cond[:2, 2:4], tokens[0, 2:4].expand(2, -1, -1))
    assert all(any(torch.equal(row, p) for p in preserve) for row in cond[2:])


def test_eq9_without_preserve_prompts_uses_beyond_samples_alone():
    """The explicit task's `preserve: []`: every preserved condition is a beyond-concept sample."""
    s, tokens = sampler(torch.zeros(0, 6, 8))
    cond = s.preserve_conditions(4)
    assert cond.shape == (4, 6, 8) and torch.equal(cond[:, :2], tokens[0, :2].expand(4, -1, -1))
    distance = (cond[:, 2:4] - tokens[0, 2:4]).norm(dim=-1)
    assert (distance >= s.d1 - 1e-5).all() and (distance <= s.d2 + 1e-5).all()


@pytest.mark.parametrize("regularization, mining", [("none", MINING), ("paper", {})])
def test_without_preserve_prompts_or_beyond_samples_it_says_why(regularization, mining):
    with pytest.raises(ValueError, match="Eq. 9 has nothing to keep"):
        sampler(torch.zeros(0, 6, 8), regularization, mining)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_lora_trains_on_a_half_precision_sd_with_float32_weights(tiny_sd, tmp_path, dtype):
    """The SD task configs load the model in half precision: the teacher runs in it, the student's LoRA
    trains in float32 (the file keeps float32 weights, which diffusers casts when it loads them)."""
    import json
    from safetensors.torch import load_file
    from conftest import run_stage
    from erasure.config import defaults
    world = sd_params(tiny_sd, dtype)
    mining = dict(num_neighbors=4, num_beyond=4, d1=0.6, d1_anchor=0.3, d2=3.0, s1=0.999, s2=0.0, data_components=4)
    mined, deltas = tmp_path / "mine.safetensors", tmp_path / "deltas.safetensors"
    run_stage("mine", "--params", json.dumps({**world, "concept": "heart", "sampler": "paper", "erase_prompts": ["a heart"],
                                              "anchor": "a shape", "mining": mining, "prompt_bank": [], "seed": 3}),
              "--concept", "heart", "--sampler", "paper", "--out", mined)
    run_stage("closed_form", "--params", json.dumps({**world, "concept": "heart", "kind": "realera", "regularization": "paper",
                                                     "closed_form": defaults("closed_form"), "pooled": False,
                                                     "preserve_prompts": ["a circle"]}),
              "--method", "realera", "--concept", "heart", "--embeddings", mined, "--out", deltas)
    out = tmp_path / "lora" / "pytorch_lora_weights.safetensors"
    lora = {**defaults("lora"), "steps": 2, "batch_size": 2, "anchor_images": 2, "anchor_steps": 2}
    run_stage("train_lora", "--params", json.dumps({**world, "concept": "heart", "lora": lora, "regularization": "paper",
                                                    "preserve_prompts": ["a circle"], "seed": 0}),
              "--deltas", deltas, "--embeddings", mined, "--out", out)
    weights = load_file(out)
    assert weights and all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())
