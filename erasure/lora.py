"""LoRA prediction-noise alignment on top of the closed-form edit (RealEra Eq. 8 and 9).

Odd steps (Eq. 8): the student's noise prediction for a freshly perturbed erase embedding e + d is
pulled to the frozen original UNet's prediction for a perturbed anchor a + d'.
Even steps (Eq. 9): for preserved conditions (the preserve prompts, and fresh beyond-concept samples
when the method regularizes) the student is pulled to the teacher's own prediction.
z_t is noised from images the original model draws for the anchor prompt.
"""
import copy
import tempfile
import time
from pathlib import Path

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from . import checkpoint, cli, embedding_set, io
from .edits import apply_edit
from .flux import component
from .mining import perturb, principal_directions, project_out
from .progress import Progress
from .sampling import noised_batch, predict_noise, sample
from .world import load_world_from_params

CHECKPOINT_EVERY = 20


def add_lora(host: torch.nn.Module, rank: int, seed: int, targets: list[str]) -> list[torch.nn.Parameter]:
    """A LoRA on the modules named `targets` (the world's edit sites: a UNet's attn2 to_k / to_v, Flux's
    context_embedder) of `host` (flux.component: the UNet, or Flux's transformer)."""
    torch.manual_seed(seed)
    host.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=targets))
    return [p for n, p in host.named_parameters() if "lora_" in n]


def lora_state_dict(host: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in get_peft_model_state_dict(host).items()}


def save_lora(directory: str | Path, host: torch.nn.Module, prefix: str) -> None:
    """diffusers' LoRA file (pytorch_lora_weights.safetensors), as its pipeline's load_lora_weights reads it."""
    if prefix == "transformer":
        from diffusers import FluxPipeline
        FluxPipeline.save_lora_weights(directory, transformer_lora_layers=lora_state_dict(host))
    else:
        from diffusers import StableDiffusionPipeline
        StableDiffusionPipeline.save_lora_weights(directory, unet_lora_layers=lora_state_dict(host))


def with_span(full: torch.Tensor, span: torch.Tensor, start: int) -> torch.Tensor:
    """Full prompt embeddings [B, L, D] with positions [start, start + T) replaced by span [B, T, D]."""
    out = full.clone()
    out[:, start:start + span.shape[1]] = span
    return out


class ConditionSampler:
    """Fresh conditions every step, from one erase prompt's clean span and the mining settings."""

    def __init__(self, erase_full, anchor_full, entry, mining, regularization, preserve, gen, basis=None):
        self.e, self.a = entry["erase"], entry["anchor"]
        self.erase_full, self.anchor_full = erase_full, anchor_full
        self.start, self.anchor_start = entry["span_start"], entry["anchor_start"]
        self.mining, self.regularization, self.preserve, self.gen, self.basis = (
            mining, regularization, preserve, gen, basis)
        norm = self.e.norm(dim=-1).mean().item()
        self.d1, self.d1a, self.d2 = (mining.get(k, 0) * norm for k in ("d1", "d1_anchor", "d2"))
        if not len(preserve) and (regularization == "none" or not mining):
            raise ValueError("LoRA: no preserve prompts and no beyond-concept samples, so Eq. 9 has nothing to "
                             "keep; give preserve prompts or use a method with regularization")

    def erase_pair(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(student conditions, teacher conditions) [n, L, D] for Eq. 8."""
        if not self.mining:
            return self.erase_full.expand(n, -1, -1), self.anchor_full.expand(n, -1, -1)
        m = self.mining
        e, _ = perturb(self.e, n, 0.0, self.d1, m["s2"], m["s1"], self.gen, self.basis)
        a, _ = perturb(self.a, n, 0.0, self.d1a, m["s2"], m["s1"], self.gen, self.basis)
        return (with_span(self.erase_full.expand(n, -1, -1), e, self.start),
                with_span(self.anchor_full.expand(n, -1, -1), a, self.anchor_start))

    def preserve_conditions(self, n: int) -> torch.Tensor:
        """Conditions [n, L, D] for Eq. 9: preserve prompts, with beyond samples in half the batch when
        regularizing; beyond samples alone when there are no preserve prompts (the explicit task's
        `preserve: []`)."""
        if len(self.preserve):
            idx = torch.randint(len(self.preserve), (n,), generator=self.gen)
            cond, k = self.preserve[idx], n // 2
        else:
            cond, k = self.erase_full.expand(n, -1, -1).clone(), n
        if self.regularization != "none" and self.mining:
            m = self.mining
            b, _ = perturb(self.e, k, self.d1, self.d2, -1.0, m["s2"], self.gen, self.basis)
            if self.regularization == "projected":
                b = project_out(b, self.e)
            cond[:k] = with_span(self.erase_full.expand(k, -1, -1), b, self.start)
        return cond


def train(student: torch.nn.Module, teacher: torch.nn.Module, train_scheduler, z0: torch.Tensor,
          sampler: "ConditionSampler", cfg: dict, gen: torch.Generator, start_step: int = 0,
          opt: torch.optim.Optimizer | None = None, params: list[torch.nn.Parameter] | None = None) -> list[float]:
    """Alternate Eq. 8 (odd steps) and Eq. 9 (even steps); returns the loss history."""
    losses = []
    bar = Progress(cfg["steps"], "lora", every=10, initial=start_step, unit="steps")
    for step in range(start_step + 1, cfg["steps"] + 1):
        bs = cfg["batch_size"]
        xt, _, t = noised_batch(z0, bs, train_scheduler, gen)
        if step % 2 == 1:
            student_cond, teacher_cond = sampler.erase_pair(bs)
        else:
            student_cond = teacher_cond = sampler.preserve_conditions(bs)
        with torch.no_grad():
            target = predict_noise(teacher, xt, t, teacher_cond)   # each in its own dtype
        loss = torch.nn.functional.mse_loss(predict_noise(student, xt, t, student_cond), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        bar.update(loss=loss.item(), phase="erase" if step % 2 else "preserve")
        yield step, losses
    bar.close()


def train_alignment(prm: dict, deltas: str | Path, embeddings: str | Path, out: str | Path,
                    method: str | None = None) -> None:
    """The LoRA stage: align the closed-form-edited UNet (deltas) with the original on the mined set
    (embeddings), checkpointing every CHECKPOINT_EVERY steps and resuming from the last checkpoint;
    writes `out` (diffusers' pytorch_lora_weights.safetensors) and its sidecar."""
    cfg = prm["lora"]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)   # run alone, no Snakemake has made it
    t0 = time.time()

    # 1. Teacher (original), student (closed-form edit + LoRA on attn2 to_k / to_v).
    world = load_world_from_params(prm)
    teacher = copy.deepcopy(world.unet).eval().requires_grad_(False)
    apply_edit(world, deltas)
    # float32 master weights for the student (Adam's moments of half-precision weights underflow), as
    # ESD trains; the teacher stays in the world's dtype. A no-op for a float32 world.
    student = world.unet.float()
    host, prefix = component(student)
    params = add_lora(host, cfg["rank"], prm["seed"], list(world.edit_sites))
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=0.0)
    gen = torch.Generator().manual_seed(prm["seed"])

    # 2. Conditions: clean spans from the embedding set; full prompts for the positions outside them.
    prompts, mined = embedding_set.load(embeddings)
    entry = {**prompts[0], **mined["prompts"][0]}
    enc = world.encoder
    erase_full = enc.encode([mined["erase_prompts"][0]])
    anchor_full = enc.encode([mined["anchor"]])
    basis = None
    if mined["sampler"] == "data":
        bank = enc.encode_tokens(mined["prompt_bank"])
        basis = principal_directions(bank.reshape(-1, bank.shape[-1]), mined["mining"]["data_components"])
    preserve = enc.encode(prm["preserve_prompts"])
    sampler = ConditionSampler(erase_full, anchor_full, entry, mined["mining"], prm["regularization"],
                                    preserve, gen, basis)

    # 3. z0: images the original model draws for the anchor prompt (seeded), in latent space.
    seeds = [prm["seed"] + k for k in range(cfg["anchor_images"])]
    z0 = sample(teacher, world.make_scheduler(), anchor_full.expand(len(seeds), -1, -1), world.null_embedding(),
                seeds, world.latent_shape, steps=cfg["anchor_steps"], guidance=cfg["anchor_guidance"])

    # 4. Resume from a checkpoint if one exists, then train.
    ckpt = out.parent / "checkpoint.safetensors"
    run_owner = checkpoint.owner(prm, deltas, embeddings)
    start, _, _ = checkpoint.resume(ckpt, params, opt, gen, run_owner, cli.progress)
    if start:
        cli.progress(f"resuming LoRA training at step {start}")
    losses = []
    for step, losses in train(student, teacher, world.make_train_scheduler(), z0, sampler, cfg, gen, start, opt,
                              params):
        if step % CHECKPOINT_EVERY == 0 and step < cfg["steps"]:
            checkpoint.save(ckpt, params, opt, gen, step, metadata={"owner": run_owner})

    # 5. Save in diffusers' LoRA format (atomic: write in a temp dir, then rename).
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        save_lora(tmp, host, prefix)
        Path(tmp, "pytorch_lora_weights.safetensors").replace(out)
    io.write_json(io.sidecar_path(out), {**prm, "method": method, "steps_run": cfg["steps"] - start,
                                             "final_losses": [round(x, 6) for x in losses[-10:]],
                                             "wall_time_s": round(time.time() - t0, 1)})
    ckpt.unlink(missing_ok=True)

