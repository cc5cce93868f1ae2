"""The LESER policy: model loading, prompts, group sampling, log-prob scoring and LoRA.

Self-contained: it depends on torch/transformers only, never on ``retrieval``, ``reward``,
``grpo`` or ``leser``.
"""
from .expand import expand_queries, sample_expansions
from .loading import convert_gguf, default_policy_dir, load_policy
from .logprobs import CompletionScorer, completion_logprobs, naive_completion_logprobs
from .lora import (LoraConfig, apply_lora, load_adapter, lora_state_dict, merge_lora, save_adapter,
                   save_peft_adapter)
from .prompts import PromptConfig, build_prompt, parse_completion
from .sampling import Rollout, sample_groups

__all__ = [
    "load_policy",
    "default_policy_dir",
    "convert_gguf",
    "PromptConfig",
    "build_prompt",
    "parse_completion",
    "Rollout",
    "sample_groups",
    "expand_queries",
    "sample_expansions",
    "completion_logprobs",
    "CompletionScorer",
    "naive_completion_logprobs",
    "LoraConfig",
    "apply_lora",
    "merge_lora",
    "lora_state_dict",
    "load_adapter",
    "save_adapter",
    "save_peft_adapter",
]
