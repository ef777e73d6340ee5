"""A "world" is what the pipeline edits: a text encoder, a UNet, its schedulers and latent codec.

Two kinds share this interface: the mini world (the default, offline, CPU) and any Stable Diffusion
v1.x/v2.x or SDXL diffusers model (id or local directory). Every stage talks to a World, never to a model
family directly.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file

from . import miniworld
from .environment import check_sd_model, model_family
from .text import MINILM_LENGTH, CLIPEncoder, MiniLMEncoder, SDXLEncoder, TextEncoder, minilm_tokenizer


@dataclass
class World:
    encoder: TextEncoder
    unet: torch.nn.Module
    make_scheduler: Callable      # () -> a fresh sampling scheduler
    make_train_scheduler: Callable
    latent_shape: tuple           # per-image latent shape
    decode: Callable              # latents [B, ...] -> uint8 images [B, H, W, 3]
    encode_images: Callable       # float images [B, 3, H, W] in [-1, 1] -> latents
    causal_text: bool             # CLIP is causal: tokens before the concept word do not see it
    zero_null: bool = False       # the unconditional branch is all zeros (SDXL's force_zeros_for_empty_prompt)

    def null_embedding(self) -> torch.Tensor:
        """The unconditional branch's context: the embedding of "", or zeros where the pipeline uses zeros."""
        null = self.encoder.encode([""])[0]
        return torch.zeros_like(null) if self.zero_null else null

    def edit_modules(self) -> dict[str, torch.nn.Linear]:
        """The cross-attention projections every closed-form edit touches: {name: nn.Linear}."""
        return {name: m for name, m in self.unet.named_modules()
                if name.endswith(("attn2.to_k", "attn2.to_v")) and isinstance(m, torch.nn.Linear)}


def to_uint8(images: torch.Tensor) -> "numpy.ndarray":
    """[B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3]."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def load_miniworld(weights_dir: str | Path) -> World:
    weights_dir = Path(weights_dir)
    path = weights_dir / "unet.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"mini-world weights not found: {path} (miniworld.weights in the config; "
                                "run `snakemake pretrain` to train them)")
    unet = miniworld.build_unet()
    unet.load_state_dict(load_file(path))
    return World(encoder=MiniLMEncoder(), unet=unet.eval().requires_grad_(False),
                 make_scheduler=miniworld.sample_scheduler, make_train_scheduler=miniworld.train_scheduler,
                 latent_shape=(12, 16, 16), decode=lambda z: to_uint8(miniworld.unpack(z)),
                 encode_images=miniworld.pack, causal_text=False)


def load_sd(model: str, dtype: str = "float32", device: str = "auto", resolution: int | None = None) -> "World":
    """Load a Stable Diffusion diffusers model (v1.x/v2.x, or SDXL: the family is read from its
    model_index.json): text encoder(s), UNet, VAE and scheduler, on `device` (auto: cuda when a GPU is
    visible, else cpu)."""
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel

    check_sd_model(model)
    family = model_family(model)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = getattr(torch, dtype)
    encoder = _clip_encoder(model, family, device)
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=torch_dtype).to(device)
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=torch_dtype).to(device)
    sched_config = DDIMScheduler.load_config(model, subfolder="scheduler")
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    size = resolution or unet.config.sample_size * scale
    latent_shape = (unet.config.in_channels, size // scale, size // scale)
    zero_null = False
    if family == "sdxl":
        add_sdxl_conditions(unet, size, encoder.pooled_dim)
        zero_null = _pipeline_config(model).get("force_zeros_for_empty_prompt", True)
        # SDXL's VAE overflows in float16; its pipeline decodes in float32 when the VAE says force_upcast.
        if torch_dtype == torch.float16 and vae.config.force_upcast:
            vae = vae.float()
    vae_dtype = vae.dtype

    @torch.inference_mode()
    def decode(latents):
        images = vae.decode(latents.to(device, vae_dtype) / vae.config.scaling_factor).sample
        return to_uint8(images.float().cpu())

    @torch.inference_mode()
    def encode_images(images):
        dist = vae.encode(images.to(device, vae_dtype)).latent_dist
        return dist.mean.float().cpu() * vae.config.scaling_factor

    return World(encoder=encoder, unet=unet.eval().requires_grad_(False),
                 make_scheduler=lambda: DDIMScheduler.from_config(sched_config),
                 make_train_scheduler=lambda: DDPMScheduler.from_config(sched_config),
                 latent_shape=latent_shape, decode=decode, encode_images=encode_images, causal_text=True,
                 zero_null=zero_null)


def _clip_encoder(model: str, family: str, device: str = "cpu") -> TextEncoder:
    """The family's text encoder(s), in float32 (they run once per prompt, and float32 keeps mined rows exact)."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder").to(device)
    if family == "sd":
        return CLIPEncoder(tokenizer, text_encoder)
    tokenizer_2 = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer_2")
    text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(model, subfolder="text_encoder_2").to(device)
    return SDXLEncoder((tokenizer, tokenizer_2), (text_encoder, text_encoder_2))


def _pipeline_config(model: str) -> dict:
    from diffusers import DiffusionPipeline
    return dict(DiffusionPipeline.load_config(model))


def add_sdxl_conditions(unet: torch.nn.Module, size: int, pooled_dim: int) -> None:
    """SDXL's UNet also takes the pooled text embedding and six "time ids" (original size, crop corner,
    target size; the pipeline's defaults for a square image of `size` pixels). The pooled embedding
    arrives as the context's last row (SDXLEncoder); this pre-hook takes it off and passes both as
    added_cond_kwargs, so every caller keeps calling unet(x, t, context). A caller that passes
    added_cond_kwargs itself (diffusers' own pipeline) is left alone."""
    time_ids = torch.tensor([size, size, 0, 0, size, size], dtype=torch.float32)

    def split_pooled(module, args, kwargs):
        if kwargs.get("added_cond_kwargs") is not None:
            return None
        args, kwargs = list(args), dict(kwargs)
        if len(args) > 2:      # unet(sample, timestep, context), as the stages call it
            context, args[2] = args[2], args[2][:, :-1]
        else:
            context = kwargs["encoder_hidden_states"]
            kwargs["encoder_hidden_states"] = context[:, :-1]
        kwargs["added_cond_kwargs"] = {"text_embeds": context[:, -1, :pooled_dim],
                                       "time_ids": time_ids.to(context.device, context.dtype).expand(len(context), -1)}
        return tuple(args), kwargs

    unet.register_forward_pre_hook(split_pooled, with_kwargs=True)


def load_text_encoder(params: dict) -> tuple[TextEncoder, bool]:
    """Only the text encoder of a world (mining needs nothing else)."""
    if params["world"] == "miniworld":
        return MiniLMEncoder(), False
    model = params["sd"]["model"]
    check_sd_model(model)
    return _clip_encoder(model, model_family(model)), True


def load_tokenizer(params: dict) -> tuple:
    """A world's tokenizer and the number of tokens its encoder keeps, without loading any model (SDXL's
    second tokenizer splits text as its first does, so the first serves the length checks)."""
    if params["world"] == "miniworld":
        return minilm_tokenizer(), MINILM_LENGTH
    from transformers import CLIPTokenizer
    check_sd_model(params["sd"]["model"])
    tokenizer = CLIPTokenizer.from_pretrained(params["sd"]["model"], subfolder="tokenizer")
    return tokenizer, tokenizer.model_max_length


def load_world_from_params(params: dict) -> World:
    if params["world"] == "miniworld":
        return load_miniworld(params["miniworld"]["weights"])
    sd = params["sd"]
    return load_sd(sd["model"], dtype=sd["dtype"], device=sd["device"], resolution=sd["resolution"])
