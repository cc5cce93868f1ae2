"""How rewards become a parameter update: the GRPO objective (pure functions) and the training loop."""
from grpo.config import GRPOConfig

__all__ = ["GRPOConfig"]
