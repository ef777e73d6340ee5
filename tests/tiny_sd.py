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


def _tokenizer_dir(directory, length):
    """directory/_tok with the tokenizer's files, keeping `length` tokens."""
    tok_dir = directory / "_tok"
    tok_dir.mkdir(parents=True, exist_ok=True)
    _tokenizer_files(tok_dir)
    # transformers 5 ignores vocab_file/merges_file in the constructor: load from the directory.
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"model_max_length": length}))
    return tok_dir


def build_tiny_sd(directory, seed=0, full_size=False):
    """Write a diffusers StableDiffusionPipeline directory; returns its path. full_size: the SD v1.x
    architecture itself (860 M-parameter UNet, 12-layer 768-wide text encoder, 512 px VAE), saved in fp16."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    directory = Path(directory)
    tokenizer = CLIPTokenizer.from_pretrained(_tokenizer_dir(directory, 77 if full_size else 16))
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


def build_tiny_sdxl(directory, seed=0, full_size=False, text_layers=None):
    """Write a diffusers StableDiffusionXLPipeline directory with SDXL's parts at toy widths (random
    weights): two CLIP text encoders (the second with a projection: the pooled embedding), a UNet that
    takes text_embeds and time_ids, a VAE; returns its path. full_size: SDXL base 1.0's architecture
    itself (2.6 B-parameter UNet, CLIP ViT-L and OpenCLIP bigG text encoders), saved in fp16;
    text_layers: that many layers in each text encoder instead of their 12 and 32 (same widths)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    directory = Path(directory)
    tok_dir = _tokenizer_dir(directory, 77 if full_size else 16)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    tokenizer_2 = CLIPTokenizer.from_pretrained(tok_dir, pad_token="!")   # SDXL's second tokenizer pads with "!"
    torch.manual_seed(seed)
    if full_size:
        return _save_sdxl(directory, tokenizer, tokenizer_2, *_full_size_sdxl_parts(tokenizer, text_layers))

    def text_config(width):
        return CLIPTextConfig(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                              num_attention_heads=4, vocab_size=len(tokenizer), max_position_embeddings=16,
                              projection_dim=24, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)

    text_encoder = CLIPTextModel(text_config(16))
    text_encoder_2 = CLIPTextModelWithProjection(text_config(32))
    # SDXL's UNet: context 16 + 32 wide; added embedding = pooled (24) + 6 time ids x 8 sinusoid channels.
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=48,
                                attention_head_dim=(2, 4), use_linear_projection=True,
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                projection_class_embeddings_input_dim=24 + 6 * 8, norm_num_groups=16)
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=16, sample_size=16, scaling_factor=0.13025, force_upcast=True)
    return _save_sdxl(directory, tokenizer, tokenizer_2, text_encoder, text_encoder_2, unet, vae)


def _full_size_sdxl_parts(tokenizer, text_layers=None):
    """SDXL base 1.0's configs (random weights), each part cast to fp16 as soon as it is built."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    ids = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072,
                                                num_hidden_layers=text_layers or 12, num_attention_heads=12,
                                                hidden_act="quick_gelu", **ids)).half()
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=1280, intermediate_size=5120, num_hidden_layers=text_layers or 32, num_attention_heads=20,
        projection_dim=1280, hidden_act="gelu", **ids)).half()
    unet = UNet2DConditionModel(
        sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816).half()
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=1024, scaling_factor=0.13025, force_upcast=True).half()
    return text_encoder, text_encoder_2, unet, vae


def _save_sdxl(directory, tokenizer, tokenizer_2, text_encoder, text_encoder_2, unet, vae):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    scheduler = EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                       steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler)
    pipe.save_pretrained(directory / "model")
    # SDXL's scheduler config also carries the DDIM keys of the SD configs it came from (clip_sample false);
    # a DDIM scheduler built from it must not clip latents to [-1, 1].
    config_path = directory / "model/scheduler/scheduler_config.json"
    config = json.loads(config_path.read_text())
    config.update(clip_sample=False, set_alpha_to_one=False)
    config_path.write_text(json.dumps(config, indent=2))
    return directory / "model"


def _t5_tokenizer(directory, length):
    """A T5 (Unigram, sentencepiece-style) tokenizer over a few words and the letters, saved to
    directory/_t5tok (real T5's vocabulary is not shipped here)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast
    words = ["a", "photo", "of", "the", "shape", "heart", "star", "painting", "by", "in", "style", "person"]
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + w, -1.0) for w in words] + [(c, -3.0) for c in letters] + [("▁" + c, -3.5) for c in letters]
    tok = Tokenizer(models.Unigram(list(dict(vocab).items()), unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                extra_ids=0, model_max_length=length)
    tokenizer.save_pretrained(directory / "_t5tok")
    return T5TokenizerFast.from_pretrained(directory / "_t5tok")


def build_tiny_flux(directory, seed=0, full_size=False):
    """Write a diffusers FluxPipeline directory with Flux.1-dev's parts at toy widths (random weights):
    CLIP (its pooled output), T5 (the token states), a transformer with one joint and one single block
    and a guidance embedding, a 16-channel VAE and Flux's flow-matching scheduler; returns its path.
    full_size: FLUX.1-dev's widths (the GPU check) with 2 joint and 4 single blocks and a 2-layer T5-XXL,
    saved in bfloat16 (its full depth is 12 B parameters; the widths decide each kernel's shape)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    directory = Path(directory)
    tokenizer = CLIPTokenizer.from_pretrained(_tokenizer_dir(directory, 77 if full_size else 16))
    tokenizer_2 = _t5_tokenizer(directory, 512 if full_size else 16)
    torch.manual_seed(seed)
    if full_size:
        transformer, text_encoder_2, text_encoder, vae = full_size_flux_parts(blocks=(2, 4), t5_layers=2)
        transformer, text_encoder_2, text_encoder, vae = (m.to(torch.bfloat16) for m in
                                                          (transformer, text_encoder_2, text_encoder, vae))
    else:
        text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                                                    num_attention_heads=4, vocab_size=len(tokenizer),
                                                    max_position_embeddings=16, bos_token_id=tokenizer.bos_token_id,
                                                    eos_token_id=tokenizer.eos_token_id,
                                                    pad_token_id=tokenizer.eos_token_id))
        text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=64,
                                                 num_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
                                                 pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
        transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                             attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                             pooled_projection_dim=24, guidance_embeds=True, axes_dims_rope=(4, 6, 6))
        vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=16,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            norm_num_groups=16, sample_size=16, scaling_factor=0.3611, shift_factor=0.1159,
                            use_quant_conv=False, use_post_quant_conv=False)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)
    pipe.save_pretrained(directory / "model")
    return directory / "model"


def full_size_flux_parts(blocks=(19, 38), t5_layers=24):
    """FLUX.1-dev's configs (random weights; build them under torch.device("meta") to count shapes and
    FLOPs without memory): the 12 B-parameter transformer (19 joint and 38 single blocks, guidance
    embedding), T5-XXL's encoder, CLIP ViT-L and the 16-channel VAE; blocks and t5_layers: fewer of them
    at the same widths."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel
    # the class defaults are FLUX.1's widths
    transformer = FluxTransformer2DModel(num_layers=blocks[0], num_single_layers=blocks[1], guidance_embeds=True)
    t5 = T5EncoderModel(T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=t5_layers,
                                 num_heads=64, feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1,
                                 decoder_start_token_id=0))
    clip = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"))
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
    return transformer, t5, clip, vae
