"""Inference: expansions for a batch of queries, as served (greedy by default)."""
from __future__ import annotations

import torch

from .prompts import PromptConfig, build_prompt, parse_completion
from .sampling import sample_groups


def expand_queries(
    model,
    tokenizer,
    queries: list[str],
    contexts: list[list[str]],
    cfg: PromptConfig,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    batch_size: int = 16,
    distinct_lines: bool = False,
) -> list[list[str]]:
    """Parsed expansions (at most ``2 * num_expansions`` lines, unjudged) for each query and its context titles.

    ``distinct_lines``: decode so that no line repeats an earlier one or the query (:mod:`policy.lines`).
    """
    if len(queries) != len(contexts):
        raise ValueError(f"{len(queries)} queries but {len(contexts)} contexts")
    out: list[list[str]] = []
    for start in range(0, len(queries), batch_size):
        batch = queries[start:start + batch_size]
        prompts = [build_prompt(tokenizer, q, c, cfg) for q, c in zip(batch, contexts[start:start + batch_size])]
        rollout = sample_groups(model, tokenizer, prompts, 1, max_new_tokens=max_new_tokens, temperature=temperature,
                                distinct_from=batch if distinct_lines else None)
        out.extend(parse_completion(text, cfg.num_expansions) for text in rollout.texts)
    return out


def sample_expansions(
    model,
    tokenizer,
    queries: list[str],
    contexts: list[list[str]],
    cfg: PromptConfig,
    num_samples: int,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    seed: int = 0,
) -> list[list[list[str]]]:
    """``num_samples`` parsed completions per query, sampled at ``temperature``: ``out[i][s]`` is sample ``s``
    of query ``i``. Query ``i``'s samples come from its own generator, seeded ``seed + i``, so they do not depend
    on the batch around it."""
    if len(queries) != len(contexts):
        raise ValueError(f"{len(queries)} queries but {len(contexts)} contexts")
    if num_samples < 1 or temperature <= 0:
        raise ValueError(f"need num_samples >= 1 and temperature > 0, got {num_samples} and {temperature}")

    out: list[list[list[str]]] = []
    for start in range(0, len(queries), batch_size):
        batch = queries[start:start + batch_size]
        prompts = [build_prompt(tokenizer, q, c, cfg) for q, c in zip(batch, contexts[start:start + batch_size])]
        generators = [torch.Generator(device=model.device).manual_seed(seed + start + i) for i in range(len(batch))]
        rollout = sample_groups(model, tokenizer, prompts, num_samples, max_new_tokens=max_new_tokens,
                                temperature=temperature, generator=generators)
        parsed = [parse_completion(text, cfg.num_expansions) for text in rollout.texts]
        out.extend(parsed[i * num_samples:(i + 1) * num_samples] for i in range(len(batch)))
    return out
