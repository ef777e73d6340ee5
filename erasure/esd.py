"""ESD (Gandikota et al., ICCV 2023): fine-tune the UNet so that, for the erased prompt c, it predicts

    eps(x_t, c_from) - eta * (eps(x_t, c) - eps(x_t, ""))        (all three from the frozen model)

i.e. negative guidance away from c. x_t comes from the frozen model's own partial sampling of c
(classifier-free guidance `start_guidance`, a random number of DDIM steps). ESD-x trains the
cross-attention (attn2) parameters, ESD-u the rest (which of the rest: TRAIN_SETS below).
"""
from typing import Iterator

import torch

from .progress import Progress
from .sampling import step


# What each `train` value updates (docs/baselines.md):
#   xattn    ESD-x, both reference codes: the cross-attention (attn2) projections.
#   linear   ESD-u of the 2025 code (esd_sd.py, esd-u): weights and biases of every Linear and Conv2d
#            module outside cross-attention; norms are left as they are.
#   noxattn  ESD-u of the 2023 code (train-esd.py, noxattn): every parameter outside cross-attention,
#            the time embedding and the output layers (CompVis `out.` = diffusers conv_norm_out, conv_out).
#   unet     ours: every parameter outside cross-attention, norms, time embedding and output included.
TRAIN_SETS = ("xattn", "linear", "noxattn", "unet")


def trainable_names(unet: torch.nn.Module, train: str) -> list[str]:
    """Names of the parameters the `train` set above updates, in the UNet's parameter order."""
    in_xattn = {n for n, _ in unet.named_parameters() if ".attn2." in n}
    if train == "xattn":
        chosen = in_xattn
    elif train == "linear":
        chosen = {f"{name}.{p}" for name, module in unet.named_modules()
                  if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and ".attn2." not in f".{name}."
                  for p, _ in module.named_parameters(recurse=False)}
    elif train == "noxattn":
        chosen = {n for n, _ in unet.named_parameters() if n not in in_xattn
                  and not n.startswith(("time_embedding.", "conv_norm_out.", "conv_out."))}
    elif train == "unet":
        chosen = {n for n, _ in unet.named_parameters() if n not in in_xattn}
    else:
        raise ValueError(f"esd train set {train!r}: one of {TRAIN_SETS}")
    return [n for n, _ in unet.named_parameters() if n in chosen]


@torch.no_grad()
def partial_sample(teacher: torch.nn.Module, scheduler, cond: torch.Tensor, null: torch.Tensor, x: torch.Tensor,
                   stop: int, guidance: float) -> torch.Tensor:
    """Run the first `stop` DDIM steps of scheduler.timesteps from noise x with guidance."""
    context = torch.cat([null.expand_as(cond), cond])
    for t in scheduler.timesteps[:stop]:
        eps_u, eps_c = teacher(torch.cat([x, x]), t, context).sample.chunk(2)
        x = step(scheduler, eps_u + guidance * (eps_c - eps_u), t, x)
    return x


def train(student: torch.nn.Module, teacher: torch.nn.Module, scheduler, cond: torch.Tensor, null: torch.Tensor,
          source: torch.Tensor, cfg: dict, gen: torch.Generator, latent_shape: tuple, params: list[torch.nn.Parameter],
          opt: torch.optim.Optimizer, start_step: int = 0) -> Iterator[tuple[int, float]]:
    """ESD iterations start_step+1 .. cfg["iterations"]; yields (iteration, loss) after each.

    cond, null, source: [L, D] embeddings of the erased prompt, "" and erase_from. The teacher runs in
    its own dtype and device; the student (float32 master weights) gets the same inputs in its dtype; the
    loss is taken in float32. Noise is drawn on the CPU generator, so every device draws the same.
    """
    teacher_at = next(teacher.parameters())
    student_dtype = next(student.parameters()).dtype
    scheduler.set_timesteps(cfg["ddim_steps"])
    b = cfg["batch_size"]
    c, n, s = (e.to(teacher_at.device, teacher_at.dtype).expand(b, -1, -1) for e in (cond, null, source))
    bar = Progress(cfg["iterations"], "esd", every=20, initial=start_step, unit="iterations")
    for it in range(start_step + 1, cfg["iterations"] + 1):
        stop = int(torch.randint(0, cfg["ddim_steps"], (1,), generator=gen))
        noise = torch.randn(b, *latent_shape, generator=gen) * scheduler.init_noise_sigma
        x = partial_sample(teacher, scheduler, c, n, noise.to(teacher_at.device, teacher_at.dtype), stop,
                           cfg["start_guidance"])
        t = scheduler.timesteps[stop]
        with torch.no_grad():
            e_src, e_c, e_0 = teacher(torch.cat([x, x, x]), t, torch.cat([s, c, n])).sample.float().chunk(3)
            target = e_src - cfg["eta"] * (e_c - e_0)
        prediction = student(x.to(student_dtype), t, c.to(student_dtype)).sample
        loss = torch.nn.functional.mse_loss(prediction.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(loss=loss.item())
        yield it, loss.item()
    bar.close()
    for p in params:
        p.requires_grad_(False)
