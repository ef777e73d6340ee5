"""Few-shot revival (the fine-tuning probe of "Erased or Dormant?", arXiv 2505.16174): fine-tune the
erased model on a handful of images of the concept and count the steps until the concept is back.

The shots are images the unedited model draws for the concept's canonical prompt (the white-box
attacks' targets, attacks.target_latents); the loss is the plain denoising loss with that prompt,

    min_W  E_{x0 in shots, t, noise} || eps_W(x_t, t, E(prompt)) - noise ||^2,

over every cross-attention to_k / to_v weight (Custom Diffusion's few-shot parameters, and the
projections the closed-form erasers edit), with Adam. At each checkpoint step the model so far is
written as weight deltas from the unedited model keyed by parameter name (edits.apply_edit reads them),
and the generate and score stages draw it with the pre-attack prompts: the first step whose ASR reaches
50% is the revival figure (robustness.revival_rows).
"""
import shutil
import time
from pathlib import Path
from typing import Iterator

import torch

from . import checkpoint, cli, io
from .attacks import PROMPT_COLUMNS, prompt_rows, target_latents
from .edits import apply_edit
from .progress import Progress
from .sampling import noised_batch, predict_noise
from .world import load_world_from_params

CHECKPOINT_EVERY = 50


def step_file(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / f"step_{step}.safetensors"


def trainable(world) -> list[torch.nn.Parameter]:
    """The weights fine-tuned: every cross-attention to_k / to_v."""
    return [m.weight for m in world.edit_modules().values()]


def train(unet: torch.nn.Module, train_scheduler, z0: torch.Tensor, cond: torch.Tensor, opt: torch.optim.Optimizer,
          steps: int, batch_size: int, gen: torch.Generator,
          start_step: int = 0) -> Iterator[tuple[int, float]]:
    """Optimizer steps start_step+1 .. steps on the shots z0 [N, *latent] with condition cond [1, L, D];
    yields (step, loss). Every random draw comes from `gen` on the CPU."""
    bar = Progress(steps, "revival", every=20, initial=start_step, unit="steps")
    for step in range(start_step + 1, steps + 1):
        xt, target, t = noised_batch(z0, batch_size, train_scheduler, gen)
        eps = predict_noise(unet, xt, t, cond.expand(batch_size, -1, -1))
        loss = torch.nn.functional.mse_loss(eps, target.to(eps.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(loss=loss.item())
        yield step, loss.item()
    bar.close()


def model_deltas(unet: torch.nn.Module, original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{parameter name: current - original} (float32) for every parameter that differs: the method's edit
    and the fine-tuning together, so one file is the whole revived model."""
    out = {}
    for name, p in unet.named_parameters():
        d = p.detach().float().cpu() - original[name]
        if d.abs().max() > 0:
            out[name] = d.contiguous()
    return out


def run(prm: dict, out_dir: str | Path, deltas: str | None = None, lora: str | None = None) -> None:
    """The revival stage: fine-tune the method's model, writing step_<k>.safetensors at each checkpoint
    step, the pre-attack prompts (prompts.csv) and attack.json; resumes after a kill."""
    cfg = prm["revival"]
    out_dir = Path(out_dir)
    partial = out_dir / "partial"   # step files of an unfinished run: not the rule's outputs, so kept
    partial.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    # 1. The shots (the unedited model's images), the unedited weights, then the method's model.
    world = load_world_from_params(prm)
    z0 = target_latents(world, prm, cfg["shots"])
    original = {n: p.detach().float().cpu().clone() for n, p in world.unet.named_parameters()}
    apply_edit(world, deltas, lora)
    # Adam's moments of half-precision weights underflow: this stage trains a float32 copy.
    world.unet.float().requires_grad_(False)
    params = trainable(world)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    gen = torch.Generator().manual_seed(prm["seed"])
    # encode() runs in inference mode; the weights' gradients need their input saved, so a plain copy.
    cond = world.encoder.encode([prm["target_prompt"]]).float().clone()

    # 2. Resume (the checkpoint and partial step files belong to these settings and edit files only).
    ckpt = out_dir / "checkpoint.safetensors"
    run_owner = checkpoint.owner(prm, deltas, lora)
    start, _, _ = checkpoint.resume(ckpt, params, opt, gen, run_owner, cli.progress)
    if start:
        cli.progress(f"resuming revival at step {start}")
    else:
        shutil.rmtree(partial)
        partial.mkdir()

    # 3. Fine-tune; the model at each checkpoint step, and a training checkpoint with it.
    steps, marks, losses = max(cfg["checkpoints"]), set(cfg["checkpoints"]), {}
    for step, loss in train(world.unet, world.make_train_scheduler(), z0, cond, opt, steps, cfg["batch_size"], gen,
                            start):
        if step in marks:
            io.save_safetensors(model_deltas(world.unet, original), step_file(partial, step))
            losses[step] = round(loss, 6)
        if (step in marks or step % CHECKPOINT_EVERY == 0) and step < steps:
            checkpoint.save(ckpt, params, opt, gen, step, metadata={"owner": run_owner})

    # 4. The step files move into place together; then the prompts and the sidecar.
    for step in sorted(marks):
        step_file(partial, step).replace(step_file(out_dir, step))
    shutil.rmtree(partial)
    ckpt.unlink(missing_ok=True)
    prompts = [t.format(prm["concept"]) for t in prm["templates"]]
    io.write_csv(out_dir / "prompts.csv", PROMPT_COLUMNS, prompt_rows(prm, prompts))
    io.write_json(out_dir / "attack.json", {**prm, "prompts": prompts, "losses_at_checkpoints": losses,
                                            "steps_run": steps - start, "wall_time_s": round(time.time() - t0, 1)})
    cli.progress(f"revival on {prm['method']}/{prm['concept']}: {steps} steps, {len(marks)} checkpoints")
