"""Attacks that try to bring an erased concept back (docs/attacks.md), as one stage per (attack, model).

Every attack writes the same artefact to its directory: prompts.csv (rows in the evaluation prompts'
format: id, concept, kind "attack", prompt, seed, split, images), attack.json (its parameters and
statistics) and, when its prompts use learned tokens, tokens.safetensors (erasure.placeholders). The
generate and score stages then draw and label its prompts on any model, so one method's artefact can be
replayed on another's.

    none       the attack templates filled with the concept's name (or attacks.prompts_file's prompts):
               the pre-attack ASR
    inversion  concept inversion through the attacked model's UNet (erasure.inversion)
    ringabell  Ring-A-Bell's prompts from the text encoder alone (erasure.ringabell): model-agnostic
    unlearndiff  UnlearnDiffAtk's word prefixes through the attacked model's UNet (erasure.unlearndiff)
"""
import time
from pathlib import Path

import torch

from . import checkpoint, cli, inversion, io, placeholders, ringabell, unlearndiff
from .attack_kinds import PROMPT_ATTACKS
from .edits import apply_edit
from .sampling import prompt_latents
from .world import load_text_encoder, load_world_from_params

PROMPT_COLUMNS = ["id", "concept", "kind", "prompt", "seed", "split", "images"]
CHECKPOINT_EVERY = 50
SEED_STRIDE = 10_000   # prompt i's images use seeds first_seed + SEED_STRIDE * i + k (schema: images <= 10,000)


def prompt_rows(prm: dict, prompts: list[str]) -> list[list]:
    """The artefact's rows. Prompt i uses the same seeds in every attack, so the pre-attack template i
    and an attack's prompt i start from the same noise."""
    first = prm["image_seed"]
    return [[i, prm["concept"], "attack", p, first + SEED_STRIDE * i, "", prm["images_per_prompt"]]
            for i, p in enumerate(prompts)]


def run(prm: dict, out_dir: str | Path, deltas: str | None = None, lora: str | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY) -> None:
    """Run attack prm["attack"] against the model (the world plus deltas / LoRA) and write its artefact.
    checkpoint_every (inversion's training checkpoints) changes when a kill loses work, never the artefact."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    attack = prm["attack"]
    if attack == "none":
        prompts, stats = list(prm["base_prompts"]), {}
    elif attack == "inversion":
        prompts, stats = run_inversion(prm, out_dir, deltas, lora, checkpoint_every)
    elif attack == "ringabell":
        prompts, stats = run_ringabell(prm)
    elif attack == "unlearndiff":
        prompts, stats = run_unlearndiff(prm, deltas, lora)
    else:
        raise ValueError(f"attack {attack!r}: not one of {', '.join(PROMPT_ATTACKS)}")
    io.write_csv(out_dir / "prompts.csv", PROMPT_COLUMNS, prompt_rows(prm, prompts))
    io.write_json(out_dir / "attack.json", {**prm, "prompts": prompts, **stats,
                                            "wall_time_s": round(time.time() - t0, 1)})
    cli.progress(f"attack {attack} on {prm['method']}/{prm['concept']}: {len(prompts)} prompts")


def run_inversion(prm: dict, out_dir: Path, deltas: str | None, lora: str | None,
                  checkpoint_every: int) -> tuple[list[str], dict]:
    """Learn the placeholder tokens against the edited model; checkpointed, resumed after a kill."""
    cfg = prm["inversion"]
    world = load_world_from_params(prm)
    enc = world.encoder

    # 1. Target latents: what the unedited model draws for the concept's prompt.
    z0 = target_latents(world, prm, cfg["target_images"])

    # 2. The attacked model, and the tokens to learn (from a neutral word).
    apply_edit(world, deltas, lora)
    tokens = inversion.token_names(prm["concept_slug"], cfg["vectors"])
    vectors = inversion.install_trainable(enc, tokens, inversion.initial_vectors(enc, cfg["init_word"], cfg["vectors"]))
    opt = torch.optim.Adam([vectors], lr=cfg["lr"])
    gen = torch.Generator().manual_seed(prm["seed"])

    # 3. Resume, train, save (the checkpoint belongs to these settings and edit files only).
    ckpt = out_dir / "checkpoint.safetensors"
    run_owner = checkpoint.owner(prm, deltas, lora)
    start, _, _ = checkpoint.resume(ckpt, [vectors], opt, gen, run_owner, cli.progress)
    if start:
        cli.progress(f"resuming inversion at step {start}")
    losses = []
    for step, loss in inversion.train(world.unet, enc, world.make_train_scheduler(), z0, prm["templates"], tokens,
                                      vectors, opt, cfg, gen, start):
        losses.append(loss)
        if step % checkpoint_every == 0 and step < cfg["steps"]:
            checkpoint.save(ckpt, [vectors], opt, gen, step, metadata={"owner": run_owner})
    placeholders.save(out_dir / "tokens.safetensors", tokens, vectors)
    ckpt.unlink(missing_ok=True)
    phrase = " ".join(tokens)
    return [t.format(phrase) for t in prm["templates"]], {
        "tokens": tokens, "vector_norms": [round(v, 4) for v in vectors.detach().norm(dim=-1).tolist()],
        "steps_run": cfg["steps"] - start, "final_losses": [round(x, 6) for x in losses[-10:]]}


def target_latents(world, prm: dict, n: int) -> torch.Tensor:
    """[n, *latent] images the unedited world draws for the concept's canonical prompt (seeds from the
    attack's seed, the run's generate settings): what a white-box attack asks the attacked model to
    reconstruct."""
    return prompt_latents(world, prm["target_prompt"], [prm["seed"] + k for k in range(n)], prm["generate"])


def run_unlearndiff(prm: dict, deltas: str | None, lora: str | None) -> tuple[list[str], dict]:
    """One word prefix per base prompt (the templates filled with the concept, or attacks.prompts_file's),
    learned through the attacked model (no checkpoint: a few dozen steps per prompt; a rerun gives the
    same prompts)."""
    cfg = prm["unlearndiff"]
    world = load_world_from_params(prm)
    enc = world.encoder
    z0 = target_latents(world, prm, cfg["target_images"])
    apply_edit(world, deltas, lora)
    words = ringabell.word_vocabulary(enc, prm["names"])
    table = unlearndiff.vocabulary_table(enc, words)
    gen = torch.Generator().manual_seed(prm["seed"])
    prompts, losses = [], []
    for i, prompt in enumerate(prm["base_prompts"]):
        tokens = [f"<{prm['concept_slug']}-uda-{i}-{k}>" for k in range(cfg["prefix"])]
        prefix = unlearndiff.ProjectedPrefix(table[torch.randint(len(table), (cfg["prefix"],), generator=gen)], table)
        handle = placeholders.install(enc, tokens, prefix)
        opt = torch.optim.Adam([prefix.continuous], lr=cfg["lr"])
        run_losses = [loss for _, loss in unlearndiff.train(world.unet, enc, world.make_train_scheduler(), z0, prompt,
                                                            tokens, prefix, opt, cfg, gen)]
        handle.remove()
        prompts.append(" ".join(words[j] for j in prefix.nearest().tolist()) + " " + prompt)
        losses.append([round(x, 6) for x in run_losses[-5:]])
    return prompts, {"final_losses": losses, "vocabulary_size": len(words)}


def run_ringabell(prm: dict) -> tuple[list[str], dict]:
    cfg = prm["ringabell"]
    enc, _ = load_text_encoder(prm)
    direction = ringabell.concept_direction(enc, prm["names"], prm["templates"])
    target = enc.encode([cfg["neutral"]])[0] + cfg["eta"] * direction
    vocabulary = ringabell.word_vocabulary(enc, prm["names"])
    found = ringabell.search(enc, target, vocabulary, cfg, torch.Generator().manual_seed(prm["seed"]))
    return [p for p, _ in found], {"distances": [round(d, 6) for _, d in found], "vocabulary_size": len(vocabulary)}
