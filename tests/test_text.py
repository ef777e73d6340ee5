import pytest
import torch

from erasure.text import cuts_word


def test_minilm_fixed_length_embeddings(minilm):
    emb = minilm.encode(["a heart", "a very long prompt " * 10])
    assert emb.shape == (2, 16, 384)
    assert torch.isfinite(emb).all()


def test_minilm_padding_does_not_change_the_prompt(minilm):
    alone = minilm.encode(["a heart"])
    batched = minilm.encode(["a heart", "a five pointed star in purple"])
    assert torch.allclose(alone[0], batched[0], atol=1e-5)


def test_minilm_span_of_a_multi_token_word(minilm):
    start, end = minilm.token_span("a red love heart in blue", "love heart")
    ids = minilm.tokenize(["a red love heart in blue"])["input_ids"][0].tolist()
    assert minilm.tokenizer.decode(ids[start:end]) == "love heart"


def test_span_of_an_absent_word_names_both(minilm):
    with pytest.raises(ValueError, match="'crescent' does not occur in prompt 'a heart'"):
        minilm.token_span("a heart", "crescent")


def test_a_concept_word_past_the_encoders_cut_says_so(minilm):
    long = "a picture drawn very carefully and slowly with many small details and bright colours of a heart"
    with pytest.raises(ValueError, match=r"is \d+ tokens and the text encoder keeps 16: the concept word 'heart' falls"):
        minilm.token_span(long, "heart")


def test_synonyms_sit_nearer_their_concept(minilm):
    pooled = minilm.pooled(["a heart", "a love heart", "a square"])
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2]


def test_clip_encoder_on_tiny_sd(tiny_sd):
    from erasure.world import load_text_encoder
    encoder, causal = load_text_encoder({"world": "sd", "sd": {"model": str(tiny_sd)}})
    assert causal
    emb = encoder.encode(["a heart", "a shape"])
    assert emb.shape == (2, 16, 32)
    start, end = encoder.token_span("a red heart", "heart")
    ids = encoder.tokenize(["a red heart"])["input_ids"][0].tolist()
    assert encoder.tokenizer.decode(ids[start:end]).strip() == "heart"


def test_truncation_is_caught_only_when_the_cut_reaches_the_concept_word(minilm):
    def cut(prompt, word):
        return cuts_word(minilm.tokenizer, minilm.max_length, prompt, word)
    assert cut("a heart", "heart") is None
    assert cut("a heart " + "and more " * 10, "heart") is None   # long, but the word comes first
    assert cut("a very " * 8 + "big heart", "heart") == 20        # 16 kept tokens end before it
    assert cut("a very " * 8 + "big star", "heart") is None       # not there at all: nothing to say