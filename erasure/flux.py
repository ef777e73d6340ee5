"""Flux (diffusers' FluxPipeline models) behind the World interface.

Flux is a flow-matching transformer: it predicts a velocity on packed 2x2 latent patches, takes the T5
token states as its text tokens, CLIP's pooled embedding and (Flux.1-dev) the guidance scale as
conditioning vectors, and samples with FlowMatchEulerDiscreteScheduler, no classifier-free guidance. Here:
- `FluxDenoiser` wraps the transformer so the stages call it as they call a UNet, denoiser(latents
  [B, 16, h, w], timestep, context): it packs and unpacks the latents, builds the position ids and takes
  the pooled embedding off the context's last row (text.FluxEncoder puts it there);
- `sample_flow` is FluxPipeline's denoising loop (the same sigmas, shift and scheduler steps), so our
  images equal the pipeline's for the same seeds;
- `FlowTrainScheduler` noises training latents as flow matching does, x_t = (1 - s) x0 + s n, with the
  velocity n - x0 as the target (sampling.noised_batch), so the trainers (LoRA, the attacks) take
  Flux's own loss where a UNet takes the noise's.
The closed-form edit site is `context_embedder`, the one linear map every T5 token state goes through
before any block (docs/sd.md, "Flux").
"""
from types import SimpleNamespace

import numpy as np
import torch


def pack(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B, (h/2)(w/2), 4C]: 2x2 patches as tokens, as FluxPipeline packs them."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of `pack`: [B, (h/2)(w/2), 4C] -> [B, C, h, w]."""
    b, _, c4 = tokens.shape
    x = tokens.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c4 // 4, h, w)


def image_ids(h: int, w: int) -> torch.Tensor:
    """[(h/2)(w/2), 3] position ids of the patches: (0, row, column)."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = torch.arange(h // 2)[:, None]
    ids[..., 2] = torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3)


TRAIN_GUIDANCE = 3.5   # the guidance input while training (FluxPipeline's default, and diffusers' Flux LoRA script's)


class FluxDenoiser(torch.nn.Module):
    """The Flux transformer called as the stages call a UNet: denoiser(latents, timestep, context).sample is
    the velocity, unpacked to the latents' shape. timestep is the scheduler's (sigma x 1000); context is
    FluxEncoder's [B, L + 1, D]: the T5 token states, then the pooled CLIP embedding in the first
    `pooled_dim` columns of the last row. A guidance-distilled model called without a guidance scale (the
    trainers) gets TRAIN_GUIDANCE."""

    def __init__(self, transformer: torch.nn.Module, pooled_dim: int):
        super().__init__()
        self.transformer = transformer
        self.pooled_dim = pooled_dim

    @property
    def guided(self) -> bool:
        """Flux.1-dev takes the guidance scale as an input (guidance distillation); schnell does not."""
        return bool(self.transformer.config.guidance_embeds)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                guidance: float | None = None) -> SimpleNamespace:
        b, _, h, w = sample.shape
        at = next(self.transformer.parameters())
        tokens, pooled = context[:, :-1].to(at.dtype), context[:, -1, :self.pooled_dim].to(at.dtype)
        timestep = torch.as_tensor(timestep, device=at.device).expand(b).to(sample.dtype)
        guidance = TRAIN_GUIDANCE if guidance is None else guidance
        g = torch.full((b,), float(guidance), device=at.device) if self.guided else None
        velocity = self.transformer(hidden_states=pack(sample), timestep=timestep / 1000, guidance=g,
                                    pooled_projections=pooled, encoder_hidden_states=tokens,
                                    txt_ids=torch.zeros(tokens.shape[1], 3, device=at.device, dtype=at.dtype),
                                    img_ids=image_ids(h, w).to(at.device, at.dtype), return_dict=False)[0]
        return SimpleNamespace(sample=unpack(velocity, h, w))


class FlowTrainScheduler:
    """Flow matching's training noise, in the interface the trainers use (add_noise and
    config.num_train_timesteps, as diffusers' DDPMScheduler): timestep t in [0, 1000) is sigma = t / 1000,
    the transformer's own timestep scale. Timesteps are drawn uniformly, as the trainers draw a UNet's;
    Flux's pre-training drew them from a shifted logit-normal instead."""

    config = SimpleNamespace(num_train_timesteps=1000)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = (t.to(torch.float32) / self.config.num_train_timesteps).view(-1, *[1] * (x0.dim() - 1))
        return (1 - s) * x0 + s * noise

    @staticmethod
    def target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the transformer predicts at any timestep: the velocity."""
        return noise - x0


def component(denoiser: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The denoiser as a diffusers pipeline stores it, and the prefix of its keys in LoRA files: (the
    UNet, "unet"), or Flux's (transformer, "transformer")."""
    if isinstance(denoiser, FluxDenoiser):
        return denoiser.transformer, "transformer"
    return denoiser, "unet"


def shift_mu(image_tokens: int, config) -> float:
    """FluxPipeline's resolution-dependent shift of the sigma schedule (calculate_shift)."""
    base, top = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    lo, hi = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    slope = (hi - lo) / (top - base)
    return image_tokens * slope + lo - slope * base


def set_flux_timesteps(scheduler, steps: int, latent_shape: tuple) -> None:
    """The sigmas FluxPipeline starts from (1 down to 1/steps), shifted for the image size as it shifts them."""
    sigmas = np.linspace(1.0, 1 / steps, steps)
    extra = {}
    if scheduler.config.get("use_dynamic_shifting", False):
        extra["mu"] = shift_mu((latent_shape[1] // 2) * (latent_shape[2] // 2), scheduler.config)
    scheduler.set_timesteps(sigmas=sigmas, **extra)
    scheduler.set_begin_index(0)


@torch.inference_mode()
def sample_flow(denoiser: FluxDenoiser, scheduler, cond: torch.Tensor, latents: torch.Tensor, steps: int,
                guidance: float) -> torch.Tensor:
    """FluxPipeline's loop from the starting noise `latents` [B, C, h, w] (the world's dtype and device):
    one transformer call per step with the guidance scale as an input, no unconditional branch."""
    set_flux_timesteps(scheduler, steps, tuple(latents.shape[1:]))
    context = cond.to(latents.device)
    for t in scheduler.timesteps:
        velocity = denoiser(latents, t, context, guidance).sample
        latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
    return latents
