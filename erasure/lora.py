"""LoRA prediction-noise alignment on top of the closed-form edit (RealEra Eq. 8 and 9).

Odd steps (Eq. 8): the student's noise prediction for a freshly perturbed erase embedding e + d is
pulled to the frozen original UNet's prediction for a perturbed anchor a + d'.
Even steps (Eq. 9): for preserved conditions (the preserve prompts, and fresh beyond-concept samples
when the method regularizes) the student is pulled to the teacher's own prediction.
z_t is noised from images the original model draws for the anchor prompt.
"""
import time

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from .mining import perturb, project_out

TARGETS = ["attn2.to_k", "attn2.to_v"]


def add_lora(unet, rank, seed):
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TARGETS))
    return [p for n, p in unet.named_parameters() if "lora_" in n]


def lora_state_dict(unet):
    return {k: v.contiguous() for k, v in get_peft_model_state_dict(unet).items()}


def with_span(full, span, start):
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

    def erase_pair(self, n):
        """(student conditions, teacher conditions) [n, L, D] for Eq. 8."""
        if not self.mining:
            return self.erase_full.expand(n, -1, -1), self.anchor_full.expand(n, -1, -1)
        m = self.mining
        e, _ = perturb(self.e, n, 0.0, self.d1, m["s2"], m["s1"], self.gen, self.basis)
        a, _ = perturb(self.a, n, 0.0, self.d1a, m["s2"], m["s1"], self.gen, self.basis)
        return (with_span(self.erase_full.expand(n, -1, -1), e, self.start),
                with_span(self.anchor_full.expand(n, -1, -1), a, self.anchor_start))

    def preserve_conditions(self, n):
        """Conditions [n, L, D] for Eq. 9: preserve prompts, plus beyond samples when regularizing."""
        idx = torch.randint(len(self.preserve), (n,), generator=self.gen)
        cond = self.preserve[idx]
        if self.regularization != "none" and self.mining:
            k = n // 2
            m = self.mining
            b, _ = perturb(self.e, k, self.d1, self.d2, -1.0, m["s2"], self.gen, self.basis)
            if self.regularization == "projected":
                b = project_out(b, self.e)
            cond[:k] = with_span(self.erase_full.expand(k, -1, -1), b, self.start)
        return cond


def train(student, teacher, train_scheduler, z0, sampler, cfg, gen, progress=print, start_step=0,
          opt=None, params=None):
    """Alternate Eq. 8 (odd steps) and Eq. 9 (even steps); returns the loss history."""
    losses = []
    t0 = time.time()
    n_t = train_scheduler.config.num_train_timesteps
    for step in range(start_step + 1, cfg["steps"] + 1):
        bs = cfg["batch_size"]
        x0 = z0[torch.randint(len(z0), (bs,), generator=gen)]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(n_t, (bs,), generator=gen)
        xt = train_scheduler.add_noise(x0, noise, t)
        if step % 2 == 1:
            student_cond, teacher_cond = sampler.erase_pair(bs)
        else:
            student_cond = teacher_cond = sampler.preserve_conditions(bs)
        with torch.no_grad():
            target = teacher(xt, t, teacher_cond).sample
        loss = torch.nn.functional.mse_loss(student(xt, t, student_cond).sample, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == cfg["steps"]:
            progress(f"lora step {step}/{cfg['steps']} ({'erase' if step % 2 else 'preserve'}) "
                     f"loss {loss.item():.5f} {time.time() - t0:.0f}s")
        yield step, losses
