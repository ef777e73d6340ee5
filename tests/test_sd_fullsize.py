"""The SD v1.x architecture at full size (random weights, fp16 on disk, fp32 on CPU): mine, the closed
form over its 32 attn2 to_k/to_v matrices, and a 2-step 512 px generation with the edit applied.
Slow (a few minutes on 2 cores); CI runs it."""
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


def test_mine_closed_form_and_generate_at_full_size(full_sd, tmp_path):
    world = sd_params(full_sd, "float32")
    mining = dict(num_neighbors=8, num_beyond=8, d1=0.6, d1_anchor=0.3, d2=3.0, s1=0.999, s2=0.0, data_components=4)
    run_stage("mine", "--params", json.dumps({**world, "concept": "heart", "sampler": "paper",
                                              "erase_prompts": ["a heart"], "anchor": "a shape", "mining": mining,
                                              "prompt_bank": [], "seed": 3}),
              "--concept", "heart", "--sampler", "paper", "--out", tmp_path / "mine.safetensors")
    assert load_file(tmp_path / "mine.safetensors")["p0.erase"].shape[-1] == 768

    cf = {**world, "concept": "heart", "kind": "realera", "regularization": "projected",
          "closed_form": dict(lam=1.0, ridge=0.1, reg_weight=1.0), "preserve_prompts": ["a shape"]}
    run_stage("closed_form", "--params", json.dumps(cf), "--method", "realera", "--concept", "heart",
              "--embeddings", tmp_path / "mine.safetensors", "--out", tmp_path / "deltas.safetensors")
    deltas = load_file(tmp_path / "deltas.safetensors")
    assert len(deltas) == 32 and all(k.endswith(("attn2.to_k", "attn2.to_v")) for k in deltas)
    assert sorted({v.shape[0] for v in deltas.values()}) == [320, 640, 1280]
    assert all(v.shape[1] == 768 and torch.isfinite(v).all() for v in deltas.values())

    (tmp_path / "prompts.csv").write_text("id,concept,kind,prompt,seed\n0,heart,erase,a heart,0\n")
    gen = {**defaults("generate"), "steps": 2, "guidance": 7.5, "eta": 0.0, "images_per_prompt": 1, "batch_size": 1}
    run_stage("generate", "--params", json.dumps({**world, "method": "realera", "generate": gen}),
              "--prompts", tmp_path / "prompts.csv", "--deltas", tmp_path / "deltas.safetensors",
              "--out", tmp_path / "images.csv")
    rows = (tmp_path / "images.csv").read_text().splitlines()
    assert len(rows) == 2 and Image.open(rows[1].split(",")[-1]).size == (512, 512)
