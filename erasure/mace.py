"""MACE (Lu et al., CVPR 2024, arXiv 2403.06135; repository Shilin-LU/MACE): mass concept erasure in
three stages, each on every cross-attention to_k / to_v.

1. Closed-form refinement (CFR). Each erase prompt (a template filled with the concept) is paired with
   the same template filled with the mapping concept. Their tokens are aligned by the longest common
   prefix and suffix (the concept's own, differing tokens are dropped) and extended tail-aligned to the
   encoder's length, so the words *around* the concept, end and padding tokens included, are mapped to
   the anchor prompt's: for context rows c (erase prompt) and a (anchor prompt),
       W = (lamb W0 + sum W0 a c^T + s (sum W0 p p^T)) (lamb I + sum c c^T + s (sum p p^T))^-1
   with preserved rows p weighted s = train_preserve_scale * preserve_weight: closed_form.mixing_matrix.
2. A rank-r LoRA on each to_k and to_v, trained on the refined model with the attention loss alone:
       loss = sum over cross-attention layers of || A[:, :, concept positions] ||_F
   where A are the layer's attention probabilities (every pixel: the reference's no-mask path) and the
   concept positions are the concept's tokens plus the end token (`use_pooler`; CLIP pads with its end
   token, so there the padding counts too). Timesteps from p(t) ~ sigmoid(0.05 (t - 200)) -
   sigmoid(0.05 (t - 400)) (importance sampling); x_t noised from images the unedited model draws.
3. Closed-form fusion of the concepts' LoRAs: with W_i = W_CFR + LoRA_i and C_i every token row of
   concept i's erase prompts,
       W* = (lamb W_CFR + sum_i W_i C_i^T C_i + s_f sum W0 p p^T) (lamb I + sum_i C_i^T C_i + s_f sum p p^T)^-1,
   s_f = fuse_preserve_scale * preserve_weight: each concept's rows keep what its own LoRA does to them.

Where ours differs from the reference: docs/baselines.md.
"""
import torch

from .closed_form import mixing_matrix
from .progress import Progress
from .text import TextEncoder


def matching_positions(old: list[int], new: list[int]) -> tuple[list[int], list[int]]:
    """Positions of the common prefix and the common suffix of two token sequences, in each."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old) - 1, len(new) - 1
    while end_old >= start and end_new >= start and old[end_old] == new[end_new]:
        end_old, end_new = end_old - 1, end_new - 1
    return (list(range(start)) + list(range(end_old + 1, len(old))),
            list(range(start)) + list(range(end_new + 1, len(new))))


def extended_positions(old_idx: list[int], new_idx: list[int], length: int) -> tuple[list[int], list[int]]:
    """Both position lists continued past their last common token to the padded length, tail-aligned:
    the sequence whose last common token sits later runs to the end, the other stops as many short."""
    gap = old_idx[-1] - new_idx[-1]
    old_tail = list(range(old_idx[-1] + 1, length - max(0, -gap)))
    new_tail = list(range(new_idx[-1] + 1, length - max(0, gap)))
    return old_idx + old_tail, new_idx + new_tail


def token_ids(encoder: TextEncoder, prompts: list[str]) -> list[list[int]]:
    """Each prompt's token ids without padding (start and end tokens included)."""
    tok = encoder.tokenize(list(prompts))
    return [ids[:int(n)].tolist() for ids, n in zip(tok["input_ids"], tok["attention_mask"].sum(1))]


def aligned_rows(encoder: TextEncoder, erase_prompts: list[str],
                 anchor_prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """CFR's rows: erase-prompt contexts [N, D] and the anchor-prompt rows they map to [N, D]."""
    emb = encoder.encode_tokens(list(erase_prompts) + list(anchor_prompts)).double().cpu()
    old_emb, new_emb = emb[:len(erase_prompts)], emb[len(erase_prompts):]
    length = emb.shape[1]
    contexts, targets = [], []
    for i, (old, new) in enumerate(zip(token_ids(encoder, erase_prompts), token_ids(encoder, anchor_prompts))):
        old_idx, new_idx = extended_positions(*matching_positions(old, new), length)
        contexts.append(old_emb[i, old_idx])
        targets.append(new_emb[i, new_idx])
    return torch.cat(contexts), torch.cat(targets)


def refinement(encoder: TextEncoder, erase_prompts: list[str], anchor_prompts: list[str],
               preserve: torch.Tensor, cfg: dict) -> tuple[torch.Tensor, float, int]:
    """(M [D, D] with W_CFR = W0 M, the solve's condition number, the number of context rows)."""
    contexts, targets = aligned_rows(encoder, erase_prompts, anchor_prompts)
    m, cond = mixing_matrix(contexts, targets, preserve, cfg["train_preserve_scale"] * cfg["preserve_weight"],
                            cfg["lamb"])
    return m, cond, len(contexts)


def concept_positions(encoder: TextEncoder, prompts: list[str], concept: str, use_pooler: bool) -> torch.Tensor:
    """[B, L] bool: where each prompt holds the concept's tokens (and, with use_pooler, its end token)."""
    tok = encoder.tokenize(list(prompts))["input_ids"]
    tokenizer = encoder.tokenizer
    word = tokenizer(concept, add_special_tokens=False)["input_ids"]
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    out = torch.zeros(tok.shape, dtype=torch.bool)
    for b, ids in enumerate(tok.tolist()):
        for i in range(len(ids) - len(word) + 1):
            if ids[i:i + len(word)] == word:
                out[b, i:i + len(word)] = True
        if use_pooler:
            out[b] |= torch.tensor(ids) == end
    return out


class AttentionLossProcessor(torch.nn.Module):
    """Cross-attention with a LoRA on to_k and to_v that records the attention its queries pay to the
    concept positions (MACE's LoRA layer: down ~ N(0, 1 / rank^2), up = 0)."""

    def __init__(self, attn, rank: int, recorder: dict, generator: torch.Generator):
        super().__init__()
        d_in, device = attn.to_k.in_features, attn.to_k.weight.device
        self.recorder = recorder
        self.k_down = torch.nn.Parameter((torch.randn(rank, d_in, generator=generator) / rank).to(device))
        self.k_up = torch.nn.Parameter(torch.zeros(attn.to_k.out_features, rank, device=device))
        self.v_down = torch.nn.Parameter((torch.randn(rank, d_in, generator=generator) / rank).to(device))
        self.v_up = torch.nn.Parameter(torch.zeros(attn.to_v.out_features, rank, device=device))

    def deltas(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The LoRA's weight changes of to_k and to_v (float32)."""
        return (self.k_up @ self.k_down).detach(), (self.v_up @ self.v_down).detach()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        if encoder_hidden_states is None or hidden_states.ndim != 3:
            raise NotImplementedError("MACE's attention-loss processor is for the UNet's cross-attention only")
        residual = hidden_states
        context = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
        c32 = context.float()
        key = attn.to_k(context) + (c32 @ self.k_down.T @ self.k_up.T).to(context.dtype)
        value = attn.to_v(context) + (c32 @ self.v_down.T @ self.v_up.T).to(context.dtype)
        query, key, value = (attn.head_to_batch_dim(x) for x in (attn.to_q(hidden_states), key, value))
        probs = attn.get_attention_scores(query, key, None)                # [B * heads, pixels, L]
        positions = self.recorder["positions"].to(probs.device)           # [B, L]
        by_item = probs.view(positions.shape[0], attn.heads, probs.shape[1], probs.shape[2])
        self.recorder["losses"].append(torch.linalg.vector_norm(by_item.float() * positions[:, None, None, :]))
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def importance_weights(num_timesteps: int, temperature: float = 0.05) -> torch.Tensor:
    """MACE's p(t) (unnormalised): sigmoid(T (t - 200)) - sigmoid(T (t - 400)), a window over t in [200, 400]."""
    t = torch.arange(num_timesteps, dtype=torch.float64)
    return torch.sigmoid(temperature * (t - 200)) - torch.sigmoid(temperature * (t - 400))


def train_lora(unet: torch.nn.Module, train_scheduler, z0: torch.Tensor, conditions: torch.Tensor,
               positions: torch.Tensor, cfg: dict, generator: torch.Generator) -> tuple[dict, list[float]]:
    """Train one concept's LoRA with the attention loss. conditions [P, L, D] and positions [P, L]: the
    erase prompts' embeddings and concept positions, one prompt drawn per step. Returns
    ({to_k / to_v module name: delta [out, D] float32}, losses); the UNet's processors are restored."""
    conditions = conditions.clone()   # the encoder's output is an inference tensor, which autograd cannot save
    layers = {name: m for name, m in unet.named_modules() if name.endswith("attn2") and hasattr(m, "set_processor")}
    saved = {name: m.processor for name, m in layers.items()}
    recorder = {"positions": None, "losses": []}
    processors = {name: AttentionLossProcessor(m, cfg["rank"], recorder, generator) for name, m in layers.items()}
    for name, m in layers.items():
        m.set_processor(processors[name])
    params = [p for proc in processors.values() for p in proc.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg["lr"], betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    n_t = train_scheduler.config.num_train_timesteps
    weights = importance_weights(n_t) if cfg["importance_sampling"] else torch.ones(n_t, dtype=torch.float64)
    losses, bar = [], Progress(cfg["steps"], "mace lora", every=10, unit="steps")
    try:
        for _ in range(cfg["steps"]):
            rows = torch.randint(len(z0), (cfg["batch_size"],), generator=generator)
            prompt = torch.randint(len(conditions), (cfg["batch_size"],), generator=generator)
            x0 = z0[rows].float().cpu()
            noise = torch.randn(x0.shape, generator=generator)
            t = torch.multinomial(weights, cfg["batch_size"], replacement=True, generator=generator)
            xt = train_scheduler.add_noise(x0, noise, t)
            recorder.update(positions=positions[prompt], losses=[])
            dev = next(unet.parameters())
            unet(xt.to(dev.device, dev.dtype), t.to(dev.device), conditions[prompt].to(dev.device, dev.dtype))
            loss = torch.stack(recorder["losses"]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(loss.item())
            bar.update(loss=loss.item())
    finally:
        bar.close()
        for name, m in layers.items():
            m.set_processor(saved[name])
    deltas = {}
    for name, proc in processors.items():
        deltas[f"{name}.to_k"], deltas[f"{name}.to_v"] = proc.deltas()
    return deltas, losses


def fuse(refined: dict[str, torch.Tensor], originals: dict[str, torch.Tensor], loras: list[dict[str, torch.Tensor]],
         contexts: list[torch.Tensor], preserve: torch.Tensor, cfg: dict) -> dict[str, torch.Tensor]:
    """Stage 3: {module name: W* (float64)} from the refined weights W_CFR, the unedited W0, each
    concept's LoRA deltas and its context rows [N_i, D] (every token of its erase prompts)."""
    d = next(iter(refined.values())).shape[1]
    scale = cfg["fuse_preserve_scale"] * cfg["preserve_weight"]
    grams = [c.T @ c for c in contexts]
    keep = scale * (preserve.T @ preserve) if len(preserve) else torch.zeros(d, d, dtype=torch.float64)
    right = cfg["lamb"] * torch.eye(d, dtype=torch.float64) + sum(grams) + keep
    inverse = torch.linalg.inv(right)
    fused = {}
    for name, w_cfr in refined.items():
        w_cfr = w_cfr.double()
        left = cfg["lamb"] * w_cfr + originals[name].double() @ keep
        for lora, gram in zip(loras, grams):
            left = left + (w_cfr + lora[name].double()) @ gram
        fused[name] = left @ inverse
    return fused
