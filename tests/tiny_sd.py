"""A complete tiny Stable Diffusion (SD v1.x architecture, random weights) built offline from configs."""
import json
from pathlib import Path

import torch


def _tokenizer_files(directory):
    """A byte-level CLIP BPE vocabulary with a few merges (real CLIP's vocabulary is not shipped here)."""
    # GPT-2/CLIP byte alphabet: printable bytes stand for themselves, the rest are shifted past 255.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(shifted))]
    vocab = chars + [c + "</w>" for c in chars]
    merges = ["h e", "he a", "hea r", "hear t</w>", "s h", "sh a", "sha p", "shap e</w>", "a</w> p"]
    for m in merges:
        vocab.append(m.replace(" ", ""))
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(dict.fromkeys(vocab))}))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def build_tiny_sd(directory, seed=0, full_size=False):
    """Write a diffusers StableDiffusionPipeline directory; returns its path. full_size: the SD v1.x
    architecture itself (860 M-parameter UNet, 12-layer 768-wide text encoder, 512 px VAE), saved in fp16."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    directory = Path(directory)
    tok_dir = directory / "_tok"
    tok_dir.mkdir(parents=True, exist_ok=True)
    _tokenizer_files(tok_dir)
    # transformers 5 ignores vocab_file/merges_file in the constructor: load from the directory.
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77 if full_size else 16}))
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(seed)
    if full_size:
        return _save(directory, tokenizer, *_full_size_parts(tokenizer))
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                num_attention_heads=4, vocab_size=len(tokenizer),
                                                max_position_embeddings=16, bos_token_id=tokenizer.bos_token_id,
                                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id))
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=16)
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=16, sample_size=16)
    return _save(directory, tokenizer, text_encoder, unet, vae)


def _full_size_parts(tokenizer):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                num_attention_heads=12, vocab_size=49408, max_position_embeddings=77,
                                                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                                pad_token_id=tokenizer.eos_token_id))
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)  # SD v1.x defaults
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=512)
    return text_encoder.half(), unet.half(), vae.half()


def _save(directory, tokenizer, text_encoder, unet, vae):
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(directory / "model")
    return directory / "model"
