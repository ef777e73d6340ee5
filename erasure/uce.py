"""UCE's closed form (Gandikota et al., arXiv 2308.14761, Eq. 7) in the shared solver's terms.

    W = [lamb W0 + s_e sum_i W0 g_i c_i^T + s_p sum_j W0 c_j c_j^T] [lamb I + s_e sum_i c_i c_i^T + s_p sum_j c_j c_j^T]^-1

is closed_form.mixing_matrix with erase rows c_i (weight s_e) mapped to guide rows g_i, preserve rows
c_j with lam = s_p, and ridge = lamb. The two public versions pick different tokens:
  last  the 2025 code: one token per prompt, the last one before the end token (the last subject
        token); for the empty guide that is the start token; preserve prompts the same way.
  tail  the 2023 code: from that token to the end of the padded sequence, erase and guide tail-aligned
        row by row; preserve prompts contribute every token.
"""
import torch

from .text import TextEncoder


def last_index(encoder: TextEncoder, prompts: list[str]) -> torch.Tensor:
    """Position of the last token before the end token of each prompt: [B]."""
    mask = encoder.tokenize(prompts)["attention_mask"]
    return mask.sum(1) - 2


def rows(encoder: TextEncoder, erase_prompts: list[str], guide: str, preserve_prompts: list[str],
         tokens: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Erase rows [N, D], their guide rows [N, D] and preserve rows [P, D]."""
    emb = encoder.encode_tokens(list(erase_prompts) + [guide])
    erase_emb, guide_emb = emb[:-1], emb[-1]
    idx = last_index(encoder, list(erase_prompts) + [guide]).tolist()
    erase_idx, guide_idx = idx[:-1], idx[-1]
    preserve_emb = encoder.encode_tokens(preserve_prompts) if preserve_prompts else erase_emb[:0]
    if tokens == "last":
        erase = torch.stack([erase_emb[i, k] for i, k in enumerate(erase_idx)])
        targets = guide_emb[guide_idx].expand_as(erase)
        p_idx = last_index(encoder, preserve_prompts).tolist() if preserve_prompts else []
        preserve = torch.stack([preserve_emb[i, k] for i, k in enumerate(p_idx)]) if p_idx else erase[:0]
        return erase, targets, preserve
    length = erase_emb.shape[1]
    erase, targets = [], []
    for e, k in zip(erase_emb, erase_idx):
        n = length - max(k, guide_idx)   # rows that both sequences have after their start index
        erase.append(e[k:k + n])
        targets.append(guide_emb[guide_idx:guide_idx + n])
    return torch.cat(erase), torch.cat(targets), preserve_emb.flatten(0, 1)
