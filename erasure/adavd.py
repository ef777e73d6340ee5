"""AdaVD (Wang et al., CVPR 2025, arXiv 2412.06143): training-free erasure in cross-attention value space.

No weight changes. In every cross-attention (each `attn2`) the value of every prompt token but the
first loses its component along the erased concept's value, scaled by an adaptive token-wise shift:

    v' = v - s(cos(v, t)) * (<v, t> / <t, t>) * t,    s(x) = c / (1 + exp(-a (x - b)))

where v is the token's value with all heads together and t = W_v e is the value of the concept's last
subject token e, encoded from the concept's name alone. With several concepts t_1..t_n are made
orthogonal by Gram-Schmidt, q = P t, and the erased component is sum_i w_i sum_j P_ij s_j t_j with
w_i = <v, q_i> / <q_i, q_i> (with every s_j = 1: v's projection onto the concepts' span).

As the reference (the authors' `src/main.py`): the start token is never changed; the unconditional
prompt's values go through the same projection; the target values come from the unedited weights,
once; defaults a = 100, b = 0.93, c = 2. Where ours differs, see docs/baselines.md.

The method's edit file holds the concept embeddings e (key TARGET_KEY) and the settings (metadata);
`install` puts an AdaVDProcessor on every cross-attention, so generation, attacks and fine-tuning
attacks all run through it without a weight edit.
"""
import json

import torch
import torch.nn.functional as F

from .text import TextEncoder
from .uce import last_index

TARGET_KEY = "adavd.target"
SETTINGS_KEY = "adavd"   # the edit file's metadata entry (JSON)


def target_embeddings(encoder: TextEncoder, concepts: list[str]) -> torch.Tensor:
    """The last subject token's embedding of each concept name, encoded alone: [n, D] (float32)."""
    emb = encoder.encode_tokens(list(concepts))
    idx = last_index(encoder, list(concepts)).tolist()
    return torch.stack([emb[i, k] for i, k in enumerate(idx)])


def gram_schmidt(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal q [n, D] and lower-triangular P [n, n] with q = P t (float64)."""
    t = t.double()
    n = len(t)
    p = torch.eye(n, dtype=torch.float64, device=t.device)
    for i in range(1, n):
        for j in range(i):
            q_j = p[j] @ t
            p[i] -= (q_j @ t[i]) / (q_j @ q_j) * p[j]
    return p @ t, p


def shift(cos: torch.Tensor, settings: dict) -> torch.Tensor:
    """The adaptive token-wise shift s(cos); 1 everywhere when the method's shift is off."""
    if not settings["shift"]:
        return torch.ones_like(cos)
    a, b, c = settings["sigmoid_a"], settings["sigmoid_b"], settings["sigmoid_c"]
    return c / (1 + torch.exp(-a * (cos - b)))


def erase_values(value: torch.Tensor, t: torch.Tensor, q: torch.Tensor, p: torch.Tensor,
                 settings: dict) -> torch.Tensor:
    """value [B, L, D] (all heads together) -> the value with the concepts' components removed."""
    dtype = torch.promote_types(value.dtype, torch.float32)   # half precision models project in float32
    v, t, q, p = (x.to(dtype) for x in (value, t, q, p))
    s = shift(F.cosine_similarity(v[:, :, None, :], t[None, None], dim=-1), settings)   # [B, L, n]
    w = torch.nan_to_num((v @ q.T) / (q * q).sum(-1))   # [B, L, n]; 0 along a concept already in the span
    # sum_i w_i sum_j P_ij s_j t_j
    component = torch.einsum("bli,ij,blj,jd->bld", w, p, s, t)
    component[:, 0] = 0   # the start token is left as it is
    return (v - component).to(value.dtype)


class AdaVDProcessor:
    """A diffusers attention processor for the UNet's cross-attention that erases in value space."""

    def __init__(self, targets: torch.Tensor, settings: dict):
        self.targets = targets.float()                  # [n, inner]: t_i = W_v e_i, unedited weights
        self.basis, self.mix = gram_schmidt(targets)    # q, P
        self.settings = dict(settings)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        if encoder_hidden_states is None or hidden_states.ndim != 3 or attn.group_norm is not None \
                or attn.spatial_norm is not None:
            raise NotImplementedError("AdaVD's processor is for the UNet's cross-attention (attn2) only")
        residual = hidden_states
        batch, _, _ = hidden_states.shape
        context = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
        query = attn.to_q(hidden_states)
        key = attn.to_k(context)
        t = self.targets.to(hidden_states.device)
        value = erase_values(attn.to_v(context), t, self.basis.to(t.device), self.mix.to(t.device), self.settings)

        head_dim = key.shape[-1] // attn.heads
        query, key, value = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value))
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, context.shape[1], batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def cross_attentions(unet: torch.nn.Module) -> dict:
    """{name: Attention} for every cross-attention of a UNet."""
    return {name: m for name, m in unet.named_modules() if name.endswith("attn2") and hasattr(m, "set_processor")}


@torch.no_grad()
def install(unet: torch.nn.Module, embeddings: torch.Tensor, settings: dict) -> int:
    """Put an AdaVDProcessor on every cross-attention; targets from the current (unedited) W_v."""
    layers = cross_attentions(unet)
    for m in layers.values():
        w = m.to_v.weight
        m.set_processor(AdaVDProcessor(m.to_v(embeddings.to(w.device, w.dtype)).float(), settings))
    return len(layers)


def settings_metadata(settings: dict) -> dict:
    return {SETTINGS_KEY: json.dumps(settings, sort_keys=True)}


def read_settings(metadata: dict | None, path: str) -> dict:
    if not metadata or SETTINGS_KEY not in metadata:
        raise ValueError(f"{path}: an AdaVD edit file without its settings; rerun the adavd stage")
    return json.loads(metadata[SETTINGS_KEY])
