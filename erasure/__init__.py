"""Concept erasure for text-to-image diffusion models: the package every stage calls."""
import os

# Runs never download: weights come from local directories or the Hugging Face cache. Set before any
# stage imports diffusers or huggingface_hub, which read it once at import (a stage that ran online
# would retry the network for minutes on an uncached id). HF_HUB_OFFLINE=0 in the environment wins.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
