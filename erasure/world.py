"""A "world" is what the pipeline edits: a text encoder, a UNet, its schedulers and latent codec.

Two kinds share this interface: the mini world (the default, offline, CPU) and any Stable Diffusion
v1.x/v2.x, SDXL or Flux diffusers model (id or local directory). Every stage talks to a World, never to a
model family directly.
"""
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file

from . import miniworld
from .environment import check_sd_model, model_family
from .flux import FlowTrainScheduler, FluxDenoiser
from .text import (MINILM_LENGTH, CLIPEncoder, FluxEncoder, MiniLMEncoder, SDXLEncoder, TextEncoder, flux_length,
                   minilm_tokenizer)

UNET_EDIT_SITES = ("attn2.to_k", "attn2.to_v")
FLUX_EDIT_SITES = ("context_embedder",)   # the one linear map every T5 token state goes through (erasure/flux.py)


@dataclass
class World:
    encoder: TextEncoder
    unet: torch.nn.Module
    make_scheduler: Callable      # () -> a fresh sampling scheduler
    make_train_scheduler: Callable
    latent_shape: tuple           # per-image latent shape
    decode: Callable              # latents [B, ...] -> uint8 images [B, H, W, 3]
    encode_images: Callable       # float images [B, 3, H, W] in [-1, 1] -> latents
    causal_text: bool             # CLIP is causal: tokens before the concept word do not see it (MiniLM, T5: not)
    zero_null: bool = False       # the unconditional branch is all zeros (SDXL's force_zeros_for_empty_prompt)
    edit_sites: tuple = UNET_EDIT_SITES   # module-name endings of the closed forms' linear maps

    def null_embedding(self) -> torch.Tensor:
        """The unconditional branch's context: the embedding of "", or zeros where the pipeline uses zeros."""
        null = self.encoder.encode([""])[0]
        return torch.zeros_like(null) if self.zero_null else null

    def edit_modules(self) -> dict[str, torch.nn.Linear]:
        """The linear maps of the text tokens every closed-form edit touches: {name: nn.Linear} (a UNet's
        cross-attention to_k / to_v; Flux's context_embedder)."""
        return {name: m for name, m in self.unet.named_modules()
                if name.endswith(self.edit_sites) and isinstance(m, torch.nn.Linear)}


def to_uint8(images: torch.Tensor) -> "numpy.ndarray":
    """[B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3]."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix units (AVX-512 BF16 or AMX), the ones oneDNN uses."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check and check())


def warn_slow_half(dtype: str, device: str) -> None:
    """Warn when a half precision will run far slower than float32: on a CPU without bfloat16 units
    (measured on an AVX2 EPYC: the mini world draws 0.15 img/s in bfloat16, 2.5 in float32), and float16
    on any CPU. A warning, not a switch: the config's dtype decides the pixels, so it is never changed."""
    if device != "cpu" or dtype == "float32" or (dtype == "bfloat16" and cpu_has_bf16()):
        return
    warnings.warn(f"{dtype} on this CPU ({torch.backends.cpu.get_cpu_capability()}, no bfloat16 matrix units) "
                  "runs many times slower than float32; set the world's dtype to float32 (e.g. "
                  "miniworld: {dtype: float32}) unless these exact pixels are needed", stacklevel=2)


def load_miniworld(weights_dir: str | Path, dtype: str = "float32") -> World:
    """The mini world: its UNet in `dtype` (trained in float32), MiniLM in float32."""
    weights_dir = Path(weights_dir)
    path = weights_dir / "unet.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"mini-world weights not found: {path} (miniworld.weights in the config; "
                                "run `snakemake pretrain` to train them)")
    warn_slow_half(dtype, "cpu")
    unet = miniworld.build_unet()
    unet.load_state_dict(load_file(path))
    unet = unet.to(getattr(torch, dtype))
    return World(encoder=MiniLMEncoder(), unet=unet.eval().requires_grad_(False),
                 make_scheduler=miniworld.sample_scheduler, make_train_scheduler=miniworld.train_scheduler,
                 latent_shape=(12, 16, 16), decode=lambda z: to_uint8(miniworld.unpack(z)),
                 encode_images=miniworld.pack, causal_text=False)


def load_sd(model: str, dtype: str = "float32", device: str = "auto", resolution: int | None = None) -> "World":
    """Load a diffusers text-to-image model (SD v1.x/v2.x, SDXL or Flux: the family is read from its
    model_index.json): text encoder(s), UNet or transformer, VAE and scheduler, on `device` (auto: cuda when
    a GPU is visible, else cpu)."""
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel

    check_sd_model(model)
    family = model_family(model)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    warn_slow_half(dtype, device)
    torch_dtype = getattr(torch, dtype)
    if family == "flux":
        return load_flux(model, torch_dtype, device, resolution)
    encoder = _text_encoder(model, family, device)
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


def load_flux(model: str, torch_dtype: torch.dtype, device: str, resolution: int | None) -> World:
    """A Flux model: T5 + CLIP, the transformer behind FluxDenoiser, the 16-channel VAE (with its shift)
    and the flow-matching scheduler; images of `resolution` pixels (default FluxPipeline's, 128 latent
    pixels times the VAE's scale: 1024 for Flux.1)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    encoder = _text_encoder(model, "flux", device)
    transformer = FluxTransformer2DModel.from_pretrained(model, subfolder="transformer", torch_dtype=torch_dtype)
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=torch_dtype).to(device)
    sched_config = FlowMatchEulerDiscreteScheduler.load_config(model, subfolder="scheduler")
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    side = 2 * ((resolution or 128 * scale) // (scale * 2))    # latents of an even side, as FluxPipeline rounds
    shift, scaling = vae.config.shift_factor or 0.0, vae.config.scaling_factor

    @torch.inference_mode()
    def decode(latents):
        images = vae.decode(latents.to(device, vae.dtype) / scaling + shift).sample
        return to_uint8(images.float().cpu())

    @torch.inference_mode()
    def encode_images(images):
        return (vae.encode(images.to(device, vae.dtype)).latent_dist.mean.float().cpu() - shift) * scaling

    denoiser = FluxDenoiser(transformer, encoder.pooled_dim).to(device)
    return World(encoder=encoder, unet=denoiser.eval().requires_grad_(False),
                 make_scheduler=lambda: FlowMatchEulerDiscreteScheduler.from_config(sched_config),
                 make_train_scheduler=FlowTrainScheduler,
                 latent_shape=(transformer.config.in_channels // 4, side, side), decode=decode, encode_images=encode_images, causal_text=False, edit_sites=FLUX_EDIT_SITES)


def _text_encoder(model: str, family: str, device: str = "cpu") -> TextEncoder:
    """The family's text encoder(s), in float32 (they run once per prompt, and float32 keeps mined rows exact)."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder").to(device)
    if family == "sd":
        return CLIPEncoder(tokenizer, text_encoder)
    if family == "flux":
        from transformers import AutoTokenizer, T5EncoderModel
        t5 = T5EncoderModel.from_pretrained(model, subfolder="text_encoder_2").to(device)
        return FluxEncoder((tokenizer, AutoTokenizer.from_pretrained(model, subfolder="tokenizer_2")),
                           (text_encoder, t5))
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
    family = model_family(model)
    return _text_encoder(model, family), family != "flux"     # CLIP is causal, Flux's T5 is not


def load_tokenizer(params: dict) -> tuple:
    """A world's tokenizer and the number of tokens its encoder keeps, without loading any model (SDXL's
    second tokenizer splits text as its first does, so the first serves the length checks; Flux's token
    rows are T5's)."""
    if params["world"] == "miniworld":
        return minilm_tokenizer(), MINILM_LENGTH
    from transformers import AutoTokenizer, CLIPTokenizer
    model = params["sd"]["model"]
    check_sd_model(model)
    if model_family(model) == "flux":
        tokenizer = AutoTokenizer.from_pretrained(model, subfolder="tokenizer_2")
        return tokenizer, flux_length(tokenizer)
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    return tokenizer, tokenizer.model_max_length


def load_world_from_params(params: dict) -> World:
    if params["world"] == "miniworld":
        return load_miniworld(params["miniworld"]["weights"], params["miniworld"]["dtype"])
    sd = params["sd"]
    return load_sd(sd["model"], dtype=sd["dtype"], device=sd["device"], resolution=sd["resolution"])
