"""The shipped mini world: weights load, it samples, its oracle reads fresh renders, training is deterministic."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from erasure.render import render_batch

WEIGHTS = ROOT / "weights" / "miniworld"


@pytest.fixture(scope="module")
def world():
    from erasure.world import load_miniworld
    return load_miniworld(WEIGHTS)


def test_card_describes_the_shipped_weights():
    card = json.loads((WEIGHTS / "card.json").read_text())
    assert card["unet"]["config"]["steps"] > 0 and card["unet"]["final_loss"] > 0
    assert card["oracle"]["metrics"]["fresh_renders_acc"] >= 99.0


def test_the_committed_weights_are_what_their_configs_train():
    """weights/miniworld (protocol v2's world, docs/protocol.md item 6) is what the schema's pretrain
    defaults train, and weights/miniworld_v1 what configs/pretrain_miniworld_v1.yaml trains over them: each
    card's UNet and oracle settings, so `stages/pretrain.py` with that config trains them again. The v1
    card predates the none class and the coloured grounds; its config turns both off."""
    from erasure.config import load_config
    card = json.loads((ROOT / "weights/miniworld/card.json").read_text())
    settings = load_config([str(ROOT / "config.yaml")])["pretrain"]
    assert card["unet"]["config"] == settings["unet"] and card["oracle"]["config"] == settings["oracle"]
    card = json.loads((ROOT / "weights/miniworld_v1/card.json").read_text())
    settings = load_config([str(ROOT / "config.yaml"), str(ROOT / "configs/pretrain_miniworld_v1.yaml")])["pretrain"]
    for part in ("unet", "oracle"):
        assert card[part]["config"] == {k: settings[part][k] for k in card[part]["config"]}
    assert settings["unet"]["none_names"] == [] and settings["oracle"]["coloured_backgrounds"] == 0.0


def test_short_sampling_run(world):
    from erasure.sampling import sample
    cond = world.encoder.encode(["a circle", "a star"])
    z = sample(world.unet, world.make_scheduler(), cond, world.null_embedding(), [0, 1], world.latent_shape,
               steps=4, guidance=5.0)
    images = world.decode(z)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    assert not np.array_equal(images[0], images[1])


def test_ancestral_sampling_draws_fresh_noise_from_each_images_seed(world):
    from erasure.sampling import sample
    cond = world.encoder.encode(["a star"]).expand(3, -1, -1)

    def run(seeds, eta):
        return sample(world.unet, world.make_scheduler(), cond[:len(seeds)], world.null_embedding(), seeds,
                      world.latent_shape, steps=4, guidance=5.0, eta=eta)
    ancestral = run([0, 1, 2], 1.0)
    # alone or in a batch: equal up to float reordering in batched convolutions
    torch.testing.assert_close(run([2], 1.0)[0], ancestral[2], rtol=0, atol=1e-3)
    assert not torch.allclose(run([0, 1, 2], 0.0), ancestral, atol=1e-2)


def test_clipped_ddim_step_rederives_the_noise_from_the_clipped_image():
    # x_{t-1} = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps with x0 clipped to [-1, 1] and eps taken back
    # from that clipped x0 (GLIDE); diffusers' default keeps the unclipped eps.
    from erasure.miniworld import sample_scheduler
    from erasure.sampling import step
    sched = sample_scheduler()
    sched.set_timesteps(10)
    t = sched.timesteps[2]
    x = torch.randn(2, 12, 16, 16, generator=torch.Generator().manual_seed(0))
    eps = 3 * torch.randn(2, 12, 16, 16, generator=torch.Generator().manual_seed(1))
    a, a_prev = sched.alphas_cumprod[t], sched.alphas_cumprod[t - 100]
    x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
    assert (x0.abs() == 1).float().mean() > 0.1  # the clip is really engaged
    eps_clipped = (x - a.sqrt() * x0) / (1 - a).sqrt()
    expected = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps_clipped
    torch.testing.assert_close(step(sched, eps, t, x), expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(sched.step(eps, t, x).prev_sample, expected, atol=1e-3)


def test_oracle_reads_fresh_renders():
    from erasure.oracle import classify
    from erasure.pretrain import images_to_tensor
    from erasure.scoring import OracleScorer
    oracle = OracleScorer(WEIGHTS).model
    images, labels, _ = render_batch(800, seed=12345)
    pred, _ = classify(oracle, images_to_tensor(images))
    acc = 100 * (pred.numpy() == labels).mean()
    assert acc >= 99.0, f"oracle accuracy on fresh renders {acc:.1f}%"


def test_oracle_rejects_what_is_no_concept():
    from erasure.oracle import REJECT, classify, reject_images
    from erasure.pretrain import images_to_tensor
    from erasure.scoring import OracleScorer
    oracle = OracleScorer(WEIGHTS).model
    pred, _ = classify(oracle, images_to_tensor(reject_images(200, seed=999)))
    assert (pred == REJECT).float().mean() >= 0.9


def test_unet_training_is_deterministic_and_resumes(minilm, tmp_path, monkeypatch):
    from erasure import pretrain
    from erasure.config import defaults
    cfg = {**defaults("pretrain", "unet"), "steps": 6, "pool_size": 64, "batch_size": 4, "log_every": 100,
           "checkpoint_every": 3}
    quiet = lambda m: None
    pretrain.train_unet(minilm, tmp_path / "a", cfg, progress=quiet)
    pretrain.train_unet(minilm, tmp_path / "b", cfg, progress=quiet)

    # Interrupted right after the step-3 checkpoint, then run again: it resumes and ends the same.
    real_save = pretrain.io.save_safetensors

    def save_then_die(tensors, path, metadata=None):
        real_save(tensors, path, metadata)
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain.io, "save_safetensors", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        pretrain.train_unet(minilm, tmp_path / "c", cfg, progress=quiet)
    monkeypatch.setattr(pretrain.io, "save_safetensors", real_save)
    messages = []
    pretrain.train_unet(minilm, tmp_path / "c", cfg, progress=messages.append)
    assert "resuming UNet training at step 3" in messages
    a, b, c = (load_file(tmp_path / d / "unet.safetensors") for d in "abc")
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)


def test_a_fine_tune_starts_from_its_init_weights(minilm, tmp_path):
    """pretrain.unet.init_from: training starts from those weights (zero steps' worth of change at lr ~0
    leaves the committed UNet), and a missing file stops the run with the field's name before any work."""
    from erasure import pretrain
    from erasure.config import defaults
    from erasure.errors import ConfigError
    cfg = {**defaults("pretrain", "unet"), "steps": 1, "pool_size": 16, "batch_size": 2, "log_every": 100,
           "lr": 1e-12, "init_from": str(WEIGHTS / "unet.safetensors")}
    pretrain.train_unet(minilm, tmp_path / "ft", cfg, progress=lambda m: None)
    start, tuned = load_file(WEIGHTS / "unet.safetensors"), load_file(tmp_path / "ft" / "unet.safetensors")
    assert all(torch.allclose(start[k], tuned[k], atol=1e-6) for k in start)
    scratch = pretrain.initial_unet({**cfg, "init_from": None}).state_dict()
    assert not all(torch.equal(scratch[k], start[k]) for k in start)
    with pytest.raises(ConfigError, match="pretrain.unet.init_from"):
        pretrain.train_unet(minilm, tmp_path / "missing", {**cfg, "init_from": str(tmp_path / "nope.safetensors")})
    assert not (tmp_path / "missing").exists()


def test_the_none_class_trains_under_its_own_captions(minilm):
    """The UNet's pool gets a share of none-class images (white blank canvases, black ones, canvases
    filled with the caption's colour (the default), or the oracle's reject blobs) captioned with the none
    names, so an anchor such as "an empty canvas" has something to draw that is none of the concepts."""
    from erasure import pretrain
    from erasure.config import defaults
    from erasure.oracle import REJECT, classify
    from erasure.render import COLOURS, SHAPES
    from erasure.scoring import OracleScorer
    cfg = {**defaults("pretrain", "unet"), "pool_size": 40, "none_fraction": 0.25,
           "none_names": ["blank canvas", "empty canvas", "blank"], "none_images": "blank"}
    pixels, labels, colours = pretrain.training_images(cfg)
    assert pixels.shape == (40, 3, 32, 32) and (labels == len(SHAPES)).sum() == 10 and len(colours) == 40
    assert (pixels[labels == len(SHAPES)] == 1).all() and (pixels[labels < len(SHAPES)] < 1).any(dim=1).any()
    filled, fill_labels, fill_colours = pretrain.training_images({**cfg, "none_images": "fill"})
    fill = filled[fill_labels == len(SHAPES)]
    assert (fill == fill[:, :, :1, :1]).all()   # one colour over the whole canvas
    colour_of = [c for c, k in zip(fill_colours, fill_labels) if k == len(SHAPES)]
    named = torch.tensor([list(COLOURS.values())[c] for c in colour_of], dtype=torch.float32) / 127.5 - 1
    assert ((fill[:, :, 0, 0] - named).abs() <= 25 / 127.5 + 1e-6).all()   # the caption's colour, jittered
    black, black_labels, _ = pretrain.training_images({**cfg, "none_images": "black"})
    assert (black[black_labels == len(SHAPES)] == -1).all() and torch.equal(black[:30], pixels[:30])
    blobs, blob_labels, _ = pretrain.training_images({**cfg, "none_images": "blob"})
    pred, _ = classify(OracleScorer(WEIGHTS).model, blobs[blob_labels == len(SHAPES)])
    assert (pred == REJECT).float().mean() >= 0.8   # the oracle calls the blobs none
    concepts = json.loads((ROOT / "data/miniworld/concepts.json").read_text())
    table, _ = pretrain.caption_table(minilm, concepts, cfg["none_names"])
    assert table.shape[0] == len(SHAPES) + 1
    assert torch.equal(table[-1, 0, 1, 0], minilm.encode([f"a {cfg['none_names'][0]}"])[0])   # template "a {name}"
    plain = pretrain.training_images({**cfg, "none_names": []})[1]
    assert (plain < len(SHAPES)).all()


def test_the_none_class_has_its_own_caption_dropout():
    """pretrain.unet.none_caption_dropout: the share of empty captions on the none class alone (0 keeps it
    out of the unconditional branch, the default); null, every class takes caption_dropout."""
    from erasure import pretrain
    from erasure.config import defaults
    from erasure.render import SHAPES
    cfg = {**defaults("pretrain", "unet"), "none_caption_dropout": None}
    assert torch.equal(pretrain.caption_dropout(cfg, len(SHAPES) + 1), torch.full((len(SHAPES) + 1,), 0.1))
    assert torch.equal(pretrain.caption_dropout({**cfg, "none_caption_dropout": 0.0}, len(SHAPES) + 1),
                       torch.tensor([0.1] * len(SHAPES) + [0.0]))
    assert torch.equal(pretrain.caption_dropout({**cfg, "none_names": [], "none_caption_dropout": 0.0}, len(SHAPES)),
                       torch.full((len(SHAPES),), 0.1))


def test_the_oracle_learns_the_models_own_none_images(minilm):
    """The oracle's model-degraded renders are drawn like the UNet's pool: with a none class, a share of
    them are the model's own round trips of none images under the none captions, labelled REJECT (what
    the retrained model draws for the anchor is what the oracle learns to call none). Without one they
    are the shapes alone, as the committed oracle was trained."""
    from erasure import pretrain
    from erasure.config import defaults
    from erasure.miniworld import build_unet
    from erasure.oracle import REJECT
    unet = build_unet(seed=0).eval()
    ocfg = {**defaults("pretrain", "oracle"), "round_trip_steps": 2}
    ucfg = {**defaults("pretrain", "unet"), "none_fraction": 0.25, "none_names": ["blank canvas", "empty canvas", "blank"]}
    images, labels = pretrain.degraded_renders(unet, minilm, 8, 5, ocfg, ucfg, batch=4)
    assert images.shape == (8, 32, 32, 3) and (labels == REJECT).sum() == 2
    _, plain = pretrain.degraded_renders(unet, minilm, 8, 5, ocfg, {**ucfg, "none_names": []}, batch=4)
    assert (plain != REJECT).all()


def test_an_oracle_trained_on_coloured_grounds_says_how_it_reads_them(minilm, tmp_path):
    """pretrain.oracle.coloured_backgrounds: its card adds the accuracy on fresh renders that all lie on
    coloured grounds; without it the card's metrics are those of the committed oracle."""
    from erasure import pretrain
    from erasure.config import defaults
    from erasure.miniworld import build_unet
    unet = build_unet(seed=0).eval()
    small = dict(clean=64, degraded=8, reject=8, epochs=1, eval_size=16, round_trip_steps=2)
    ucfg = defaults("pretrain", "unet")
    for share in (0.0, 0.5):
        ocfg = {**defaults("pretrain", "oracle"), **small, "coloured_backgrounds": share}
        card = pretrain.train_oracle_stage(unet, minilm, tmp_path, ocfg, ucfg, progress=lambda _: None)
        assert ("fresh_coloured_acc" in card["metrics"]) == (share > 0)


@pytest.mark.slow
def test_the_mini_worlds_dag_runs_in_bfloat16(tmp_path):
    """miniworld.dtype bfloat16: the closed form, RealEra's LoRA, ESD-x, generation, scoring and concept
    inversion on the UNet in bfloat16 (the trainers keep float32 master weights)."""
    from conftest import miniworld_config, run_dag
    config = miniworld_config(tmp_path, run_methods=["original", "cf", "realera", "esd_x"])
    config["miniworld"]["dtype"] = "bfloat16"
    config["esd"].update(iterations=2, batch_size=1)
    config["attacks"].update(run=["inversion"], methods=["realera"], images_per_prompt=1, templates=["a {}"])
    config["attacks"]["inversion"].update(steps=2, batch_size=2, target_images=2)
    rows = run_dag(tmp_path, config)
    assert sorted(rows) == ["cf", "esd_x", "original", "realera"] and all(r["n_images"] for r in rows.values())
    with open(tmp_path / "out/report/robustness.csv") as f:
        assert "realera,heart,inversion" in f.read()


@pytest.mark.parametrize("has_bf16, dtype, device, warned", [
    (False, "bfloat16", "cpu", True), (True, "bfloat16", "cpu", False), (True, "float16", "cpu", True),
    (False, "float32", "cpu", False), (False, "bfloat16", "cuda", False)])
def test_a_slow_half_precision_is_warned_about(monkeypatch, has_bf16, dtype, device, warned):
    """bfloat16 on a CPU without bfloat16 units (17x slower than float32 on an AVX2 EPYC) and float16 on
    any CPU get a warning that names the fix; the dtype itself is never changed."""
    import warnings
    from erasure import world
    monkeypatch.setattr(world, "cpu_has_bf16", lambda: has_bf16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        world.warn_slow_half(dtype, device)
    messages = [str(w.message) for w in caught]
    assert bool(messages) == warned
    assert all("float32" in m and dtype in m for m in messages)
