"""randommask: BERT-like DNA foundation models with RandomMask pre-training."""

from randommask.errors import RandomMaskError

__all__ = ["RandomMaskError"]
__version__ = "0.1.0"
