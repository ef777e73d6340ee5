"""Classifier-free-guided sampling shared by both worlds: prompts x seeds in one batch, one seed per image."""
import torch


def initial_noise(seeds, shape):
    """One generator per image, so an image depends only on its own seed (not on its batch)."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.inference_mode()
def sample(unet, scheduler, cond, null, seeds, latent_shape, steps=25, guidance=5.0):
    """Denoise a batch with classifier-free guidance.

    cond: [B, L, D] prompt token embeddings; null: [L, D] embedding of "" (the unconditional branch);
    seeds: B ints. Returns latents [B, *latent_shape]. Conditional and unconditional branches run
    in one UNet call of batch 2B.
    """
    scheduler.set_timesteps(steps)
    latents = initial_noise(seeds, latent_shape) * scheduler.init_noise_sigma
    dtype = next(unet.parameters()).dtype
    device = next(unet.parameters()).device
    latents = latents.to(device, dtype)
    context = torch.cat([null.expand_as(cond), cond]).to(device, dtype)  # [2B, L, D]
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        eps_uncond, eps_cond = unet(model_in, t, context).sample.chunk(2)
        eps = eps_uncond + guidance * (eps_cond - eps_uncond)
        latents = scheduler.step(eps, t, latents).prev_sample
    return latents.float().cpu()


@torch.inference_mode()
def round_trip(unet, scheduler, x0, cond, null, t_start, seed, steps=25, guidance=5.0):
    """Noise clean latents x0 to timestep t_start and denoise back with the model (SDEdit)."""
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps[scheduler.timesteps <= t_start]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    latents = scheduler.add_noise(x0, noise, timesteps[:1].repeat(len(x0)))
    context = torch.cat([null.expand_as(cond), cond])
    for t in timesteps:
        eps_uncond, eps_cond = unet(torch.cat([latents, latents]), t, context).sample.chunk(2)
        latents = scheduler.step(eps_uncond + guidance * (eps_cond - eps_uncond), t, latents).prev_sample
    return latents
