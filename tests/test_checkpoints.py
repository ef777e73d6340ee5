"""A checkpoint belongs to the settings that made it: a rerun with other settings starts over."""
import json

import pytest
import torch

from conftest import miniworld_config, run_stage, write_config
from erasure import checkpoint, lora, params


def test_resume_needs_the_same_owner(tmp_path):
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(0)
    path = tmp_path / "ckpt.safetensors"
    checkpoint.save(path, [p], opt, gen, 7, metadata={"owner": checkpoint.owner({"lr": 0.1})})
    said = []
    assert checkpoint.resume(path, [p], opt, gen, checkpoint.owner({"lr": 0.1}), said.append)[0] == 7
    assert checkpoint.resume(path, [p], opt, gen, checkpoint.owner({"lr": 0.2}), said.append)[0] == 0
    assert not path.exists() and "other settings" in said[-1]
    (tmp_path / "input").write_bytes(b"x")
    assert checkpoint.owner({"a": 1}, tmp_path / "input") != checkpoint.owner({"a": 1})


@pytest.fixture(scope="module")
def lora_inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    config = miniworld_config(tmp)
    config["lora"].update(steps=21, anchor_images=2, anchor_steps=2, batch_size=2)   # a checkpoint at step 20
    path = write_config(tmp, config)
    mined, edit = tmp / "mine.safetensors", tmp / "edit.safetensors"
    run_stage("mine", "--config", path, "--concept", "heart", "--sampler", "paper", "--out", mined)
    run_stage("closed_form", "--config", path, "--method", "realera", "--concept", "heart", "--embeddings", mined,
              "--out", edit)
    return tmp, config, edit, mined


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("change", [{"lr": 0.003}, {"steps": 22}, {"rank": 2}])
def test_lora_rerun_with_other_settings_starts_over(lora_inputs, monkeypatch, change):
    tmp, config, edit, mined = lora_inputs
    prm = params.train_lora(config, "realera", "heart")
    out = tmp / json.dumps(change).strip("{}").replace('"', "").replace(": ", "_") / "pytorch_lora_weights.safetensors"

    real_save = checkpoint.save

    def save_then_stop(*args, **kwargs):   # the run is killed just after its first checkpoint
        real_save(*args, **kwargs)
        raise Interrupt

    monkeypatch.setattr(checkpoint, "save", save_then_stop)
    with pytest.raises(Interrupt):
        lora.train_alignment(prm, edit, mined, out, "realera")
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert (out.parent / "checkpoint.safetensors").exists()

    changed = {**prm, "lora": {**prm["lora"], **change}}
    said = []
    monkeypatch.setattr(lora.cli, "progress", said.append)
    lora.train_alignment(changed, edit, mined, out, "realera")
    assert any("made with other settings" in m for m in said) and not any("resuming" in m for m in said)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["steps_run"] == changed["lora"]["steps"] and sidecar["lora"] == changed["lora"]
