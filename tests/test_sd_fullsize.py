"""Full-size architectures with random weights (fp16 on disk, float32 on CPU, where half-precision
convolutions are far slower). Slow; CI runs them, one after the other in this file's worker (the SDXL
test peaks near 17 GB resident).

SD v1.x: mine, the closed form over its 32 attn2 to_k/to_v matrices, and a 2-step 512 px generation with
the edit applied.

SDXL base: the UNet at full size, the text encoders at their real widths but 2 layers deep; mine, the
closed form over the UNet's 140 attn2 to_k/to_v matrices and a 1-step generation with the edit applied,
at 256 px to keep the CPU time down (the UNet's weights do not depend on the resolution)."""
import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import run_stage, sd_params
from erasure.config import defaults

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_sd(tmp_path_factory):
    from tiny_sd import build_tiny_sd
    return build_tiny_sd(tmp_path_factory.mktemp("full_sd"), full_size=True)


@pytest.fixture(scope="module")
def full_sdxl(tmp_path_factory):
    from tiny_sd import build_tiny_sdxl
    # The UNet at full size; the text encoders at their widths (768 + 1280) with 2 layers each, to save memory.
    return build_tiny_sdxl(tmp_path_factory.mktemp("full_sdxl"), full_size=True, text_layers=2)


def mine_edit_and_draw(world, tmp_path, neighbors, steps):
    """Mine "heart" (paper sampler), RealEra's closed form, one image of "a heart" with the edit applied.
    Returns the embedding set, the deltas and the image's size."""
    mining = dict(num_neighbors=neighbors, num_beyond=neighbors, d1=0.6, d1_anchor=0.3, d2=3.0, s1=0.999, s2=0.0,
                  data_components=4)
    run_stage("mine", "--params", json.dumps({**world, "concept": "heart", "sampler": "paper",
                                              "erase_prompts": ["a heart"], "anchor": "a shape", "mining": mining,
                                              "prompt_bank": [], "seed": 3}),
              "--concept", "heart", "--sampler", "paper", "--out", tmp_path / "mine.safetensors")
    cf = {**world, "concept": "heart", "kind": "realera", "regularization": "projected",
          "closed_form": dict(lam=1.0, ridge=0.1, reg_weight=1.0), "pooled": False, "preserve_prompts": ["a shape"]}
    run_stage("closed_form", "--params", json.dumps(cf), "--method", "realera", "--concept", "heart",
              "--embeddings", tmp_path / "mine.safetensors", "--out", tmp_path / "deltas.safetensors")
    (tmp_path / "prompts.csv").write_text("id,concept,kind,prompt,seed\n0,heart,erase,a heart,0\n")
    gen = {**defaults("generate"), "steps": steps, "guidance": 7.5, "eta": 0.0, "images_per_prompt": 1, "batch_size": 1}
    run_stage("generate", "--params", json.dumps({**world, "method": "realera", "generate": gen}),
              "--prompts", tmp_path / "prompts.csv", "--deltas", tmp_path / "deltas.safetensors",
              "--out", tmp_path / "images.csv")
    rows = (tmp_path / "images.csv").read_text().splitlines()
    assert len(rows) == 2
    return (load_file(tmp_path / "mine.safetensors"), load_file(tmp_path / "deltas.safetensors"),
            Image.open(rows[1].split(",")[-1]).size)


def test_mine_closed_form_and_generate_at_full_size(full_sd, tmp_path):
    mined, deltas, size = mine_edit_and_draw(sd_params(full_sd, "float32"), tmp_path, neighbors=8, steps=2)
    assert mined["p0.erase"].shape[-1] == 768
    assert len(deltas) == 32 and all(k.endswith(("attn2.to_k", "attn2.to_v")) for k in deltas)
    assert sorted({v.shape[0] for v in deltas.values()}) == [320, 640, 1280]
    assert all(v.shape[1] == 768 and torch.isfinite(v).all() for v in deltas.values())
    assert size == (512, 512)


def test_sdxl_mine_closed_form_and_generate_at_full_size(full_sdxl, tmp_path):
    world = sd_params(full_sdxl, "float32")
    world["sd"]["resolution"] = 256
    mined, deltas, size = mine_edit_and_draw(world, tmp_path, neighbors=4, steps=1)
    assert mined["p0.erase"].shape == (77 - 2, 2048)   # "heart" and every token after it, not the pooled row
    assert len(deltas) == 140 and all(k.endswith(("attn2.to_k", "attn2.to_v")) for k in deltas)
    assert sorted({v.shape[0] for v in deltas.values()}) == [640, 1280]
    assert all(v.shape[1] == 2048 and torch.isfinite(v).all() for v in deltas.values())
    assert size == (256, 256)
