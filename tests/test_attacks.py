"""Attacks (docs/attacks.md): placeholder tokens, concept inversion, Ring-A-Bell, and their stage."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ROOT, forked_stages_env, miniworld_config, write_config  # noqa: E402
from erasure import inversion, params, placeholders, ringabell, unlearndiff  # noqa: E402
from erasure.config import defaults, load_config  # noqa: E402


def test_a_placeholder_set_to_a_words_embedding_encodes_exactly_as_that_word(minilm):
    row = minilm.model.get_input_embeddings().weight[minilm._content_ids("square")[0]].clone()
    handle = placeholders.install(minilm, ["<test-square>"], row[None])
    try:
        assert torch.equal(minilm.encode(["a red <test-square>"]), minilm.encode(["a red square"]))
        assert not torch.equal(minilm.encode(["a red <test-square>"]), minilm.encode(["a red circle"]))
    finally:
        handle.remove()


def test_a_placeholder_that_is_already_a_word_is_refused(minilm):
    with pytest.raises(ValueError, match="already a word"):
        placeholders.install(minilm, ["heart"], torch.zeros(1, placeholders.input_dim(minilm)))


def test_token_files_of_another_width_are_refused(tmp_path):
    path = tmp_path / "tokens.safetensors"
    placeholders.save(path, ["<a>"], torch.zeros(1, 8))
    with pytest.raises(ValueError, match="made for another world"):
        placeholders.load(path, 384)


@pytest.fixture(scope="module")
def unedited_world():
    from erasure.world import load_miniworld
    return load_miniworld(ROOT / "weights/miniworld")


def fixed_batch_loss(world, z0, prompt, seed=123, n=64):
    """Denoising loss on one fixed draw of (x0, t, noise): comparable before and after training."""
    gen = torch.Generator().manual_seed(seed)
    sched = world.make_train_scheduler()
    x0 = z0[torch.randint(len(z0), (n,), generator=gen)]
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(sched.config.num_train_timesteps, (n,), generator=gen)
    with torch.no_grad():
        eps = world.unet(sched.add_noise(x0, noise, t), t, world.encoder.encode([prompt]).expand(n, -1, -1)).sample
    return torch.nn.functional.mse_loss(eps, noise).item()


def oracle_rate(world, prompt, concept, n=24):
    """Share of n images drawn for `prompt` that the oracle labels `concept`."""
    from erasure.oracle import LABELS, Oracle
    from erasure.sampling import sample
    oracle = Oracle()
    oracle.load_state_dict(load_file(ROOT / "weights/miniworld/oracle.safetensors"))
    latents = sample(world.unet, world.make_scheduler(), world.encoder.encode([prompt]).expand(n, -1, -1),
                     world.null_embedding(), list(range(5000, 5000 + n)), world.latent_shape, steps=25, guidance=5.0, eta=1.0)
    images = torch.from_numpy(world.decode(latents)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        labels = oracle.eval()(images).argmax(-1)
    return (labels == LABELS.index(concept)).float().mean().item()


@pytest.mark.slow   # 300 inversion steps and 48 oracle-labelled images (about 2 min idle); the SIGKILL test runs inversion in make test
def test_inversion_loss_falls_and_its_token_draws_the_concept_more_often_than_a_random_token(unedited_world):
    from erasure.sampling import sample
    world, enc = unedited_world, unedited_world.encoder
    z0 = sample(world.unet, world.make_scheduler(), enc.encode(["a heart"]).expand(16, -1, -1), world.null_embedding(),
                list(range(16)), world.latent_shape, steps=25, guidance=5.0, eta=1.0)
    tokens = ["<heart-test-0>"]
    init = inversion.initial_vectors(enc, "object", 1)
    vectors = inversion.install_trainable(enc, tokens, init)
    before = fixed_batch_loss(world, z0, "a <heart-test-0>")
    # The attack's own settings (steps, lr): on the protocol-v2 world 120 steps left the token at heart 12.5%
    # against a random token's 20.8% (48 images each), short of what the schema's attack runs.
    settings = defaults("attacks", "inversion")
    opt = torch.optim.Adam([vectors], lr=settings["lr"])
    cfg = {"steps": settings["steps"], "batch_size": 16}
    for _ in inversion.train(world.unet, enc, world.make_train_scheduler(), z0, ["a {}"], tokens, vectors, opt, cfg,
                             torch.Generator().manual_seed(0)):
        pass
    after = fixed_batch_loss(world, z0, "a <heart-test-0>")
    assert after < before

    # A random direction of the learned vector's norm, as a second placeholder.
    random = torch.randn(1, init.shape[1], generator=torch.Generator().manual_seed(1))
    random = random / random.norm() * vectors.detach().norm()
    placeholders.install(enc, ["<random-test-0>"], random)
    learned_rate = oracle_rate(world, "a <heart-test-0>", "heart")
    random_rate = oracle_rate(world, "a <random-test-0>", "heart")
    assert learned_rate > random_rate + 0.25, (learned_rate, random_rate)


def test_ringabell_direction_points_at_its_own_concept_more_than_at_others(minilm):
    templates = ["a {}", "a red {}"]
    direction = ringabell.concept_direction(minilm, ["heart", "love heart"], templates)
    probe = ["a drawing of a {}"]   # a template the direction was not built from

    def cosine(name):
        diff = ringabell.concept_direction(minilm, [name], probe)
        return torch.nn.functional.cosine_similarity(direction.flatten(), diff.flatten(), dim=0).item()

    own = cosine("heart")
    assert own > 0
    assert all(own > cosine(other) for other in ("circle", "square", "star", "crescent"))


def test_ringabell_vocabulary_leaves_out_the_concepts_words_and_search_is_seeded(minilm):
    vocab = ringabell.word_vocabulary(minilm, ["heart", "love heart"])
    assert "heart" not in vocab and "hearts" not in vocab and "love" not in vocab and "circle" in vocab
    target = minilm.encode(["a shape"])[0] + 3 * ringabell.concept_direction(minilm, ["heart"], ["a {}"])
    cfg = {"population": 16, "generations": 5, "length": 3, "mutation": 0.25, "prompts": 2}
    first = ringabell.search(minilm, target, vocab[:2000], cfg, torch.Generator().manual_seed(7))
    again = ringabell.search(minilm, target, vocab[:2000], cfg, torch.Generator().manual_seed(7))
    assert first == again and len(first) == 2 and first[0][1] <= first[1][1]
    longer = ringabell.search(minilm, target, vocab[:2000], {**cfg, "generations": 15},
                              torch.Generator().manual_seed(7))
    assert longer[0][1] <= first[0][1]   # elitism: the best never gets worse


def test_unlearndiff_prefix_is_words_in_the_forward_and_trains_straight_through(minilm):
    words = ringabell.word_vocabulary(minilm, ["heart"])[:500]
    table = unlearndiff.vocabulary_table(minilm, words)
    prefix = unlearndiff.ProjectedPrefix(table[:2] + 0.01, table)
    tokens = ["<uda-test-0>", "<uda-test-1>"]
    handle = placeholders.install(minilm, tokens, prefix)
    try:
        found = " ".join(words[i] for i in prefix.nearest().tolist())
        assert torch.equal(minilm.encode([f"{' '.join(tokens)} a heart"]), minilm.encode([f"{found} a heart"]))
        minilm.encode_with_grad([f"{' '.join(tokens)} a heart"]).sum().backward()
        assert prefix.continuous.grad is not None and prefix.continuous.grad.abs().sum() > 0
    finally:
        handle.remove()


def attack_command(config_path, out_dir, steps, checkpoint_every=5):
    prm = params.attack(load_config(str(config_path)), "inversion", "original", "heart")
    prm["inversion"]["steps"] = steps
    return [sys.executable, str(ROOT / "stages/attack.py"), "--params", json.dumps(prm), "--attack", "inversion",
            "--method", "original", "--concept", "heart", "--out-dir", str(out_dir),
            "--checkpoint-every", str(checkpoint_every)]


@pytest.fixture(scope="module")
def attack_config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attack")
    config = miniworld_config(tmp)
    config["attacks"].update(templates=["a {}"], images_per_prompt=2)
    config["attacks"]["inversion"].update(batch_size=2, target_images=2)
    return write_config(tmp, config)


def test_a_prompts_file_replaces_the_templates_of_its_concepts_only(tmp_path):
    """attacks.prompts_file (the explicit task's I2P subset): the pre-attack row and UnlearnDiffAtk start
    from its prompts for a listed concept; another concept keeps its filled templates; inversion and
    Ring-A-Bell never see the file, so editing it reruns only what starts from it."""
    from erasure import attacks
    (tmp_path / "attack_prompts.csv").write_text("concept,prompt\nheart,a  valentine card\nheart,two lovers\n")
    config = miniworld_config(tmp_path, run_methods=["original", "cf"], erase=["heart", "star"])
    config["attacks"].update(run=["unlearndiff"], templates=["a {}", "a red {}"],
                             prompts_file=str(tmp_path / "attack_prompts.csv"))
    load_config(config)
    heart, star = (params.attack(config, "none", "cf", c) for c in ("heart", "star"))
    assert heart["base_prompts"] == ["a valentine card", "two lovers"]
    assert star["base_prompts"] == ["a star", "a red star"]
    assert params.attack(config, "unlearndiff", "cf", "heart")["base_prompts"] == heart["base_prompts"]
    assert "base_prompts" not in params.attack(config, "inversion", "cf", "heart")
    attacks.run(heart, tmp_path / "none")
    with open(tmp_path / "none" / "prompts.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["prompt"] for r in rows] == ["a valentine card", "two lovers"] and {r["kind"] for r in rows} == {"attack"}


def test_inversion_killed_with_sigkill_resumes_to_the_same_tokens(attack_config, tmp_path):
    """Killed once its first checkpoint is on disk, the rerun resumes from the step the checkpoint holds
    and ends with the uninterrupted run's tokens; the checkpoint interval is not a parameter."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    subprocess.run(attack_command(attack_config, whole, 30, checkpoint_every=30), check=True, capture_output=True,
                   env=env)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(attack_command(attack_config, killed, 30), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while not (killed / "checkpoint.safetensors").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "checkpoint.safetensors").exists() and not (killed / "tokens.safetensors").exists()
    with safe_open(killed / "checkpoint.safetensors", "pt") as f:
        step = int(f.metadata()["step"])
    resumed = subprocess.run(attack_command(attack_config, killed, 30), check=True, capture_output=True, text=True,
                             env=env)
    assert step % 5 == 0 and 5 <= step < 30 and f"resuming inversion at step {step}" in resumed.stdout
    a, b = load_file(whole / "tokens.safetensors"), load_file(killed / "tokens.safetensors")
    assert list(a) == ["<heart-inv-0>"] and torch.equal(a["<heart-inv-0>"], b["<heart-inv-0>"])
    with open(killed / "prompts.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["prompt"] for r in rows] == ["a <heart-inv-0>"] and rows[0]["images"] == "2"


@pytest.mark.slow
def test_attacks_replay_on_every_model_and_fill_the_robustness_and_transfer_tables(tmp_path):
    """The DAG: each model's inversion tokens are drawn with its own model and the other's; Ring-A-Bell's
    prompts (found once) and the pre-attack prompts with both."""
    config = miniworld_config(tmp_path, run_methods=["original", "cf"])
    config["attacks"].update(run=["inversion", "ringabell", "unlearndiff", "revival"], transfer=True,
                             templates=["a {}"], images_per_prompt=2)
    config["attacks"]["revival"].update(shots=2, batch_size=2, checkpoints=[1, 2])
    config["attacks"]["inversion"].update(steps=4, batch_size=2, target_images=2)
    config["attacks"]["unlearndiff"].update(steps=2, batch_size=2, target_images=2)
    config["attacks"]["ringabell"].update(population=8, generations=2, prompts=1)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--cores", "2", "robustness",
                           "--configfile", str(write_config(tmp_path, config))], cwd=ROOT, capture_output=True,
                          text=True, env=forked_stages_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = tmp_path / "out" / "report"
    with open(report / "robustness.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["attack"]) for r in rows] == [(m, a) for m in ("original", "cf") for a in (
        "inversion", "ringabell", "unlearndiff")] + [("original", "revival"), ("cf", "revival")]
    assert all(r["n_images"] == "2" and 0 <= float(r["post_asr"]) <= 100 for r in rows)
    with open(report / "revival.csv", newline="") as f:
        assert [(r["method"], r["step"]) for r in csv.DictReader(f)] == [(m, k) for m in ("original", "cf")
                                                                         for k in ("0", "1", "2")]
    assert sorted(p.name for p in (report / "attack_grids").iterdir()) == [
        f"{a}_heart.png" for a in ("inversion", "none", "revival", "ringabell", "unlearndiff")]
    assert "<h2>Transfer: inversion tokens" in (report / "attacks.html").read_text()
    assert all(float(r["post_asr_lo"]) <= float(r["post_asr"]) <= float(r["post_asr_hi"]) for r in rows)
    with open(report / "transfer.csv", newline="") as f:
        pairs = {(r["source"], r["method"]) for r in csv.DictReader(f)}
    assert pairs == {("original", "original"), ("original", "cf"), ("cf", "original"), ("cf", "cf")}
    sidecar = json.loads((tmp_path / "out/attacks/inversion/cf/heart/attack.json").read_text())
    assert sidecar["prompts"] == ["a <heart-inv-0>"] and sidecar["steps_run"] == 4
    found = json.loads((tmp_path / "out/attacks/unlearndiff/cf/heart/attack.json").read_text())["prompts"]
    assert len(found) == 1 and found[0].endswith(" a heart") and len(found[0].split()) == 5 + 2


def test_revival_deltas_rebuild_the_fine_tuned_model_on_a_fresh_world(unedited_world, tmp_path):
    from erasure import revival
    from erasure.edits import apply_edit
    from erasure.world import load_miniworld
    world = load_miniworld(ROOT / "weights/miniworld")
    original = {n: p.detach().float().clone() for n, p in world.unet.named_parameters()}
    params_ = revival.trainable(world)
    for p in params_:
        p.requires_grad_(True)
    z0 = torch.randn(4, *world.latent_shape, generator=torch.Generator().manual_seed(0))
    cond = world.encoder.encode(["a heart"])
    steps = list(revival.train(world.unet, world.make_train_scheduler(), z0, cond, torch.optim.Adam(params_, lr=1e-3),
                               3, 2, torch.Generator().manual_seed(0)))
    assert [s for s, _ in steps] == [1, 2, 3]
    deltas = revival.model_deltas(world.unet, original)
    assert deltas and all(k.endswith(("attn2.to_k.weight", "attn2.to_v.weight")) for k in deltas)
    path = tmp_path / "step.safetensors"
    from erasure import io
    io.save_safetensors(deltas, path)
    rebuilt = apply_edit(load_miniworld(ROOT / "weights/miniworld"), str(path))
    x, t = z0[:1], torch.tensor([500])
    with torch.no_grad():
        assert torch.allclose(rebuilt.unet(x, t, cond).sample, world.unet(x, t, cond).sample, atol=1e-5)
        assert not torch.allclose(unedited_world.unet(x, t, cond).sample, world.unet(x, t, cond).sample, atol=1e-5)


def revival_command(config_path, out_dir):
    prm = params.attack(load_config(str(config_path)), "revival", "original", "heart")
    return [sys.executable, str(ROOT / "stages/revival.py"), "--params", json.dumps(prm),
            "--method", "original", "--concept", "heart", "--out-dir", str(out_dir)]


def test_revival_killed_with_sigkill_resumes_to_the_same_models(tmp_path):
    config = miniworld_config(tmp_path)
    config["attacks"].update(templates=["a {}"], images_per_prompt=2)
    config["attacks"]["revival"].update(shots=2, batch_size=2, checkpoints=[2, 25])
    path = write_config(tmp_path, config)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(revival_command(path, whole), check=True, capture_output=True, env=env)

    proc = subprocess.Popen(revival_command(path, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while not (killed / "partial/step_2.safetensors").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    while not (killed / "checkpoint.safetensors").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "step_25.safetensors").exists()
    resumed = subprocess.run(revival_command(path, killed), check=True, capture_output=True, text=True, env=env)
    assert "resuming revival at step" in resumed.stdout
    for k in (2, 25):
        a, b = load_file(whole / f"step_{k}.safetensors"), load_file(killed / f"step_{k}.safetensors")
        assert list(a) == list(b) and all(torch.equal(a[n], b[n]) for n in a)
    assert not (killed / "partial").exists() and not (killed / "checkpoint.safetensors").exists()


def write_scores(path, rates, n=10):
    """A score CSV whose prompt p has rates[p] * n images labelled as the concept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "correct"])
        for prompt, rate in rates.items():
            w.writerows([prompt, int(i < rate * n)] for i in range(n))


def test_revival_steps_to_50_is_the_first_checkpoint_at_or_above_half(tmp_path):
    from erasure import robustness
    scores, revived = tmp_path / "scores", tmp_path / "revival"
    curves = {"heart": {0: 0.0, 10: 0.2, 25: 0.5, 50: 0.9}, "crescent": {0: 0.0, 10: 0.0, 25: 0.1, 50: 0.3}}
    for concept, curve in curves.items():
        write_scores(scores / "none/original/cf" / f"{concept}.csv", {"a x": curve[0]})
        for k in (10, 25, 50):
            write_scores(revived / "cf" / concept / f"step_{k}.csv", {"a x": curve[k]})
    write_scores(scores / "none/original/original/heart.csv", {"a x": 1.0})
    write_scores(scores / "none/original/original/crescent.csv", {"a x": 0.6})
    for concept in curves:
        for k in (10, 25, 50):
            write_scores(revived / "original" / concept / f"step_{k}.csv", {"a x": 0.0})
    rows, curve = robustness.revival_rows(scores, revived, ["original", "cf"], ["heart", "crescent"], [10, 25, 50])
    by = {(r["method"], r["concept"]): r for r in rows}
    assert by[("cf", "heart")]["steps_to_50"] == 25 and by[("cf", "heart")]["post_asr"] == 90.0
    assert by[("cf", "crescent")]["steps_to_50"] == ""          # never reached
    assert by[("cf", "all")]["steps_to_50"] == 50               # pooled: 45% at 25, 60% at 50
    assert by[("original", "heart")]["steps_to_50"] == 0        # already there before any step
    assert len(curve) == 2 * 3 * 4
    table = robustness.markdown(rows, ["revival"], 50)
    assert "| cf | crescent | 0.0 [0.0, 27.8] | > 50 (30.0 [" in table
    page = robustness.html_page([("ASR", table), ("Revival", robustness.curve_markdown(curve))], ["revival_heart.png"])
    assert "<td>cf</td><td>crescent</td><td>0.0 [0.0, 27.8]</td><td>&gt; 50 (30.0 [" in page
    assert "<th>step 25</th>" in page and "<img src='attack_grids/revival_heart.png'>" in page
