"""The one place that decides where tensor work runs."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def compute_device() -> str:
    """"cuda:0" when torch sees a GPU, else "cpu". Cached: importing torch costs ~1.4 s, so it is
    done once, and only by callers that need to know."""
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"
