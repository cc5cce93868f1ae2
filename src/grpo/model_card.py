"""A ``README.md`` model card for a checkpoint folder: what the policy is, how it was trained, how to load it.

The Hub shows this file on a model's page, and someone who finds a folder months later reads it first, so
it says in words what ``config.json`` and ``training_state.json`` hold in numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

CARD_FILE = "README.md"
SETTINGS_FILE = "leser_settings.json"
"""The settings a policy was trained with and must be served with: what it was shown and what it may write."""
SETTINGS_SECTIONS = ("prompt", "rules", "reward", "engine")
REWARD_KEYS = ("relevance", "relevance_on", "relevance_weight", "coverage_weight", "deep_weight", "rule_penalty")


def _base_model(run_config: dict) -> str:
    return (run_config.get("policy") or {}).get("model") or "SmolLM2-135M-Instruct (LESER's default policy)"


def _front_matter(base: str, lora: bool) -> str:
    """The Hub's YAML header; ``base_model`` only when it is a Hub id (a local path means nothing there)."""
    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation",
             "tags:", "- leser", "- query-expansion", "- grpo"]
    if lora:
        lines.append("- lora")
    if "/" in base and not Path(base).exists() and not base.startswith((".", "/", "~")):
        lines.append(f"base_model: {base}")
    return "\n".join([*lines, "---", ""])


def _metrics_table(history: dict[str, float]) -> list[str]:
    """Validation rewards recorded so far (``valid/...@start`` before training, ``@end`` after it)."""
    rows = [(k, v) for k, v in sorted(history.items()) if k.startswith("valid/")]
    if not rows:
        return ["No validation metrics were recorded yet."]
    return ["| metric | value |", "|---|---|", *(f"| {k} | {v:.4f} |" for k, v in rows)]


def _settings(run_config: dict, section: str, keys: tuple[str, ...]) -> str:
    values = run_config.get(section) or {}
    return ", ".join(f"{k}={values[k]}" for k in keys if values.get(k) is not None) or "defaults"


def model_card(run_config: dict, step: int, history: dict[str, float], lora: bool = False) -> str:
    """The card's Markdown: base model, data, reward, engine, steps, validation metrics and how to load it."""
    base = _base_model(run_config)
    train = run_config.get("train") or {}
    data = (run_config.get("data") or {}).get("path") or "WANDS (LESER's default data set)"
    lines = [
        _front_matter(base, lora),
        "# LESER query-expansion policy",
        "",
        "A causal LM trained with GRPO to rewrite e-commerce search queries into expansions that the search "
        "engine retrieves better with, given the engine's top results as context.",
        "",
        f"- **Base model:** {base}",
        f"- **Data:** {data}",
        f"- **Reward:** {_settings(run_config, 'reward', REWARD_KEYS)}",
        f"- **Engine:** {_settings(run_config, 'engine', ('kind', 'encoder', 'fusion', 'depth'))}",
        f"- **Steps:** {step} of {train.get('max_steps', '?')} "
        f"({'LoRA ' + _settings(run_config, 'lora', ('r', 'alpha')) if lora else 'full fine-tuning'})",
        "",
        "## Validation", "", *_metrics_table(history), "",
        "## Use", "",
        "```python",
        "from transformers import AutoModelForCausalLM",
        "model = AutoModelForCausalLM.from_pretrained(\"<this folder>\")  # LoRA already merged in",
    ]
    if lora:
        lines += ["# or the adapter alone, on the base model:",
                  "from peft import PeftModel",
                  "base = AutoModelForCausalLM.from_pretrained(\"<base model>\")",
                  "model = PeftModel.from_pretrained(base, \"<this folder>/peft\")"]
    lines += ["```", "", "Command line: `leser expand --model <this folder> \"couch small apartment\"`. "
              "The full settings are in the run's `config.json`.", ""]
    return "\n".join(lines)


def write_model_card(folder: str | Path, run_config: dict, step: int, history: dict[str, float],
                     lora: bool = False) -> Path:
    """Write :func:`model_card` to ``folder/README.md``; returns its path."""
    path = Path(folder) / CARD_FILE
    path.write_text(model_card(run_config, step, history, lora), encoding="utf-8")
    return path


def write_settings(folder: str | Path, run_config: dict) -> Path:
    """``folder/leser_settings.json``: the run's resolved ``[prompt]``, ``[rules]``, ``[reward]`` and ``[engine]``,
    which ``leser expand``, ``precompute``, ``serve`` and ``eval`` read back, so a checkpoint is served as trained."""
    path = Path(folder) / SETTINGS_FILE
    settings = {name: run_config[name] for name in SETTINGS_SECTIONS if name in run_config}
    path.write_text(json.dumps(settings, indent=1, default=str), encoding="utf-8")
    return path
