"""Classifier-free-guided sampling shared by both worlds: prompts x seeds in one batch, one seed per image."""
import inspect

import torch
from diffusers import DDIMScheduler

from .flux import FlowTrainScheduler, FluxDenoiser, sample_flow


def image_generators(seeds: list[int]) -> list[torch.Generator]:
    """One generator per image, so an image depends only on its own seed (not on its batch)."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def draw_noise(generators: list[torch.Generator], shape: tuple) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


def predict_noise(unet: torch.nn.Module, xt: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """The UNet's noise prediction (Flux: its velocity) in float32, its inputs moved to the UNet's own device
    and dtype (a half-precision world's UNet; a trainer's float32 copy): what every training loss compares,
    with noised_batch's target."""
    at = next(unet.parameters())
    return unet(xt.to(at.device, at.dtype), t.to(at.device), cond.to(at.device, at.dtype)).sample.float()


# generate.sampler: each solver's diffusers class and the settings it is built with (the model card
# writes the same line for diffusers users). Classes by name: importing them loads scipy.stats (about
# 1 s a process), so only a run that uses one pays it.
SOLVERS = {
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
}
CLIPPING_SOLVERS = ("DPMSolverMultistepScheduler", "UniPCMultistepScheduler")   # those with x0 thresholding


def solver(scheduler, name: str | None):
    """The sampling scheduler for config `generate.sampler`: the world's own (None), or a diffusers solver
    on the same noise schedule (its betas, timestep count and spacing, prediction type). Where the world
    clips its DDIM x0 to [-1, 1] (the mini world draws pixels), the multistep solvers clip theirs too
    (dynamic thresholding at a maximum of 1 is that clip); Euler ancestral has no such option."""
    if name is None:
        return scheduler
    if name not in SOLVERS:
        raise ValueError(f"generate.sampler {name!r}: not one of {', '.join(SOLVERS)}")
    import diffusers
    class_name, settings = SOLVERS[name]
    if scheduler.config.get("clip_sample", False) and class_name in CLIPPING_SOLVERS:
        settings = {**settings, "thresholding": True, "sample_max_value": 1.0}
    return getattr(diffusers, class_name).from_config(scheduler.config, **settings)


def step(scheduler, eps: torch.Tensor, t: torch.Tensor, latents: torch.Tensor, eta: float = 0.0,
         noise: torch.Tensor | None = None, generators: list[torch.Generator] | None = None) -> torch.Tensor:
    """One scheduler step. For DDIM with clip_sample (the mini world), the noise is re-derived from
    the clipped x0, as in GLIDE: diffusers otherwise pairs the clipped x0 with the unclipped noise,
    which leaves grain and turns thin shapes (stars, crosses) into round blobs. eta > 0 (DDIM only)
    adds fresh noise `noise` at each step: eta = 1 is ancestral sampling, like DDPM's. A solver that
    draws its own noise (SDE, ancestral) draws each image's from that image's generator."""
    if isinstance(scheduler, DDIMScheduler):
        return scheduler.step(eps, t, latents, eta=eta, use_clipped_model_output=scheduler.config.clip_sample,
                              variance_noise=noise).prev_sample
    if generators is not None and "generator" in inspect.signature(scheduler.step).parameters:
        return scheduler.step(eps, t, latents, generator=generators).prev_sample
    return scheduler.step(eps, t, latents).prev_sample


@torch.inference_mode()
def sample(unet: torch.nn.Module, scheduler, cond: torch.Tensor, null: torch.Tensor, seeds: list[int],
           latent_shape: tuple, steps: int = 25, guidance: float = 5.0, eta: float = 0.0) -> torch.Tensor:
    """Denoise a batch with classifier-free guidance.

    cond: [B, L, D] prompt token embeddings; null: [L, D] embedding of "" (the unconditional branch);
    seeds: B ints; each image's starting noise and, with eta > 0, its per-step noise come from its own
    seed. Returns latents [B, *latent_shape]. Conditional and unconditional branches run in one UNet
    call of batch 2B. A Flux world samples as FluxPipeline does instead (erasure.flux.sample_flow).
    """
    if eta > 0 and not isinstance(scheduler, DDIMScheduler):
        raise ValueError(f"eta {eta} needs a DDIM scheduler, got {type(scheduler).__name__}")
    generators = image_generators(seeds)
    dtype = next(unet.parameters()).dtype
    device = next(unet.parameters()).device
    if isinstance(unet, FluxDenoiser):   # flow matching: the guidance scale is an input, `null` is not used
        return sample_flow(unet, scheduler, cond, draw_noise(generators, latent_shape).to(device, dtype), steps,
                           guidance).float().cpu()
    scheduler.set_timesteps(steps)
    latents = draw_noise(generators, latent_shape) * scheduler.init_noise_sigma
    latents = latents.to(device, dtype)
    context = torch.cat([null.expand_as(cond), cond]).to(device, dtype)  # [2B, L, D]
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        eps_uncond, eps_cond = unet(model_in, t, context).sample.chunk(2)
        eps = eps_uncond + guidance * (eps_cond - eps_uncond)
        noise = draw_noise(generators, latent_shape).to(device, dtype) if eta > 0 else None
        latents = step(scheduler, eps, t, latents, eta, noise, generators)
    return latents.float().cpu()


def prompt_latents(world, prompt: str, seeds: list[int], g: dict) -> torch.Tensor:
    """[len(seeds), *latent] latents the world's model draws for one prompt (image k from seeds[k]) with
    a run's generate settings g (steps, guidance, eta, sampler): the targets of the white-box attacks and
    MACE's x_0."""
    cond = world.encoder.encode([prompt]).expand(len(seeds), -1, -1)
    return sample(world.unet, solver(world.make_scheduler(), g["sampler"]), cond, world.null_embedding(), seeds,
                  world.latent_shape, steps=g["steps"], guidance=g["guidance"], eta=g["eta"])


@torch.inference_mode()
def round_trip(unet: torch.nn.Module, scheduler, x0: torch.Tensor, cond: torch.Tensor, null: torch.Tensor, t_start: int,
               seed: int, steps: int = 25, guidance: float = 5.0) -> torch.Tensor:
    """Noise clean latents x0 to timestep t_start and denoise back with the model (SDEdit): the
    oracle's model-degraded training images.

    It keeps diffusers' plain step (the clipped image paired with the unclipped noise), whose grain and
    tint resemble the model's samples: oracles trained on round trips made with `step` (re-derived
    noise, with or without eta 1) called clear hearts and crescents of the 25-step, eta-1 samples
    circles (heart 87.5% vs 100%, "a waxing moon" 63.5% vs 100% on the same images)."""
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps[scheduler.timesteps <= t_start]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    latents = scheduler.add_noise(x0, noise, timesteps[:1].repeat(len(x0)))
    context = torch.cat([null.expand_as(cond), cond])
    for t in timesteps:
        eps_uncond, eps_cond = unet(torch.cat([latents, latents]), t, context).sample.chunk(2)
        latents = scheduler.step(eps_uncond + guidance * (eps_cond - eps_uncond), t, latents).prev_sample
    return latents


def noised_batch(z0: torch.Tensor, batch: int, train_scheduler,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, target, t) for `batch` latents drawn from z0 with replacement, the training loss's inputs:
    the target is the noise (a UNet predicts it) or, under flow matching (Flux), the velocity noise - x0.
    Draws come from `gen` in this order (rows, noise, timesteps), so a seed gives the same batches."""
    x0 = z0[torch.randint(len(z0), (batch,), generator=gen)]
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(train_scheduler.config.num_train_timesteps, (batch,), generator=gen)
    target = train_scheduler.target(x0, noise) if isinstance(train_scheduler, FlowTrainScheduler) else noise
    return train_scheduler.add_noise(x0, noise, t), target, t
