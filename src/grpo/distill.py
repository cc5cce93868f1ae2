"""Best-of-N distillation: a supervised warm start before GRPO.

Sample N completions per training query, score each with the search reward, and keep the best one
when it beats the original query. Fine-tuning on those picks moves the policy straight to the
expansions that help, which a small model's own samples rarely reach: GRPO alone only reweights them.
The target is the kept expansions, one per line: the picks teach the output format as well.

A 135M model's own samples rarely help (about one query in five on Home Depot), so the candidate pool
may also hold *context candidates*: the query extended with the words of one result title it was shown
(pseudo-relevance feedback written as a query). The labels decide which title, if any, helps; the policy
has to learn that choice from the context alone, which a 135M model does poorly (README), so
``context_titles = 1`` offers only the top title: one rule, kept where it helps.

*Label candidates* go past the shown titles: the query plus the words its judged relevant items share and
the catalogue rarely uses (:class:`retrieval.CatalogVocabulary`). They use the training split's labels,
as the reward does, and teach the catalogue's names for what the shopper wants, which neither the query
nor its top results may contain: on valid, such expansions written from the labels lift the hybrid plan
by about +0.11 nDCG@10 and +0.15 R@100, where the shown titles' words reach +0.03 / +0.02.

*Spelling candidates* fix what the policy can see: a query word no catalogue title uses, replaced by the
nearest one that does (:class:`retrieval.Speller`), alone and under every other candidate.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from policy import PromptConfig, parse_completion, sample_groups
from policy.precision import PRECISION_SETTINGS, check_precision, record_precision, resolve_precision
from retrieval import CatalogVocabulary, Speller, term_expansions, title_expansions
from grpo.batch import make_prompts, shown_query
from grpo.host import use_cores
from grpo.model_card import write_settings
from grpo.provenance import provenance
from grpo.schedule import OPTIMIZERS
from grpo.sft import finetune
from reward import SearchReward


LABEL_SOURCES = ("all", "shown")


@dataclass
class DistillConfig:
    """The ``[distill]`` table: how the warm-start data is sampled, filtered and fitted."""

    output_dir: str = "runs/distill"
    """An HF model folder (safetensors) plus ``distill.json`` (selection and loss statistics)."""
    num_queries: int = 256
    """Training queries to sample for; each costs ``num_samples`` generations, the bulk of the time."""
    num_samples: int = 8
    """Sampled completions per query. More samples find better picks, at linear cost; 0 with
    ``context_candidates`` skips generation, which makes the pool nearly free."""
    context_candidates: bool = False
    """Also offer, per shown result title, the query plus that title's new words
    (:func:`retrieval.title_expansions`), each as a one-expansion completion."""
    context_titles: int = 0
    """How many of the shown titles, from the top, give candidates; 0: all of them. The labels pick among
    several titles by what the policy cannot see, so a pick it cannot predict teaches it noise; 1 teaches
    one rule (extend the query with the top result's words) on the queries where that rule helps."""
    context_prefixes: bool = False
    """With ``context_candidates``: offer the expansions of the top 1, 2, ... ``context_titles`` titles together
    (one completion of 1, 2, ... lines) instead of one title each. On engines where each title's words add
    items (the hybrid's lexical side), several together reach further than the best one alone."""
    label_candidates: bool = False
    """Also offer expansions written from the query's judged relevant items (training labels): the query plus
    ``label_terms`` of their most specific shared words, two words per expansion and, as a second candidate,
    one word per expansion (:meth:`retrieval.CatalogVocabulary.feedback_terms`)."""
    label_terms: int = 6
    """Words taken from the relevant titles for the label candidates."""
    label_source: str = "all"
    """Which relevant items the label candidates read: ``all`` of them, or only those ``shown`` in the prompt
    (among its ``context_k`` titles), whose words the policy sees and so can learn to pick. On 300 valid queries
    (hybrid) the shown items' words reach +0.048 nDCG@10 at 5 titles and +0.100 at 20, against +0.109 for all;
    R@100 only +0.006 to +0.014, against +0.150 (``experiments/runs/2026-11-28_probe_shown_labels``). At 5 titles,
    the warm start written from them was below ``all`` on valid (``2026-11-28_shown_labels_warm_start``)."""
    spelling_candidates: bool = False
    """Where the query has a word no catalogue title uses and a near one does (:class:`retrieval.Speller`), also
    offer the corrected query alone and every other candidate written on it. On valid, fixing the typos of the
    13% of queries that have one lifts their R@100 by +0.085 (``experiments/runs/2026-11-29_spelling``), but a
    warm start with these candidates did not teach the policy to fix them (``2026-11-29_spell_grpo``)."""
    spelling_repeats: int = 1
    """Fine-tune on each example kept from a spelling candidate this many times (an epoch sees it that often):
    about one pick in eleven is one. At 4 the policy still copied the typos (``2026-11-29_spell4_grpo``)."""
    temperature: float = 1.0
    """Sampling temperature of the candidates: diversity is what gives the best-of-N its headroom."""
    max_completion_length: int = 32
    min_reward: float = 0.0
    """Keep a query's best sample only when its reward exceeds this. 0: it must beat the original query."""
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 1e-5
    optim: str = "adamw_torch_fused"
    """As ``train.optim``."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay (torch's default, which every committed warm start used)."""
    max_grad_norm: float = 1.0
    precision: str = "fp32"
    """``fp32``, ``bf16`` (autocast matrix products, fp32 weights and loss) or ``auto`` (bf16 where native) for
    fine-tuning, as ``train.precision``: the forward and backward over ~250-token prompts is the warm start's
    cost. ``distill.json`` records what ``auto`` became."""
    seed: int = 0
    before_train: bool = False
    """Make ``make train`` run the whole recipe: distill into ``output_dir`` first (or reuse it when it holds a
    finished warm start), then train GRPO from it. One command, defined by counts, so it resumes and reruns."""

    def __post_init__(self) -> None:
        if self.num_queries < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("num_queries, epochs and batch_size must be >= 1")
        if self.context_titles < 0:
            raise ValueError("context_titles must be >= 0 (0: every shown title)")
        written = self.context_candidates or self.label_candidates or self.spelling_candidates
        if self.num_samples < 0 or (self.num_samples == 0 and not written):
            raise ValueError("num_samples must be >= 1, or 0 with context_candidates, label_candidates or "
                             "spelling_candidates = true")
        if self.label_terms < 1 or self.spelling_repeats < 1:
            raise ValueError("label_terms and spelling_repeats must be >= 1")
        if self.label_source not in LABEL_SOURCES:
            raise ValueError(f"label_source must be one of {LABEL_SOURCES}, got {self.label_source!r}")
        check_precision(self.precision, PRECISION_SETTINGS)
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise ValueError("learning_rate and temperature must be > 0")
        if self.optim not in OPTIMIZERS:
            raise ValueError(f"optim must be one of {OPTIMIZERS}, got {self.optim!r}")


@dataclass
class DistillExample:
    qid: str
    prompt: str
    target: str
    reward: float
    origin: str = ""
    """Which candidates the pick came from: ``samples``, ``context``, ``labels`` or ``spelling``."""


def best_in_groups(rewards: torch.Tensor, group_sizes: list[int], min_reward: float) -> list[int | None]:
    """Row index of each group's highest reward, or None where none exceeds ``min_reward``.

    ``rewards`` is ``[B]``, the groups' rows laid end to end (``sum(group_sizes) == B``). Ties go to the
    first row, so a fixed sampling seed gives a fixed pick.
    """
    if rewards.ndim != 1 or rewards.numel() != sum(group_sizes):
        raise ValueError(f"rewards must be [sum(group_sizes)] = [{sum(group_sizes)}], got {tuple(rewards.shape)}")
    picks, start = [], 0
    for size in group_sizes:
        if size:
            best = start + int(rewards[start:start + size].argmax())
            picks.append(best if rewards[best] > min_reward else None)
        else:
            picks.append(None)
        start += size
    return picks


def collect_examples(model, tokenizer, reward: SearchReward, prompt_cfg: PromptConfig, qids: list[str],
                     cfg: DistillConfig, generator: torch.Generator,
                     chunk: int = 8) -> tuple[list[DistillExample], dict]:
    """Sample, score and pick; returns the kept examples and the statistics of the search."""
    examples: list[DistillExample] = []
    sampled_rewards: list[float] = []
    best_rewards: list[float] = []
    kept_from = {"samples": 0, "context": 0, "labels": 0, "spelling": 0}
    vocabulary = CatalogVocabulary(list(reward.dataset.product_texts)) if cfg.label_candidates else None
    speller = Speller.for_plan(reward.dataset.product_texts, reward.plan) if cfg.spelling_candidates else None
    model.eval()
    for start in tqdm(range(0, len(qids), chunk), desc="best-of-n", dynamic_ncols=True):
        group = qids[start:start + chunk]
        queries, prompts, contexts = make_prompts(tokenizer, reward, group, prompt_cfg)
        # Each candidate is (where it came from, its expansions).
        pools: list[list[tuple[str, list[str]]]] = [[] for _ in group]
        if cfg.num_samples:
            rollout = sample_groups(model, tokenizer, prompts, cfg.num_samples,
                                    max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature,
                                    generator=generator)
            for i, text in enumerate(rollout.texts):
                pools[i // cfg.num_samples].append(("samples", parse_completion(text, prompt_cfg.num_expansions)))
        for pool, qid, typed, shown in zip(pools, group, queries, contexts):
            query = shown_query(reward, typed, shown)  # as the prompt shows it: no pick writes a word it lacks
            pool.extend(_rule_candidates(query, qid, shown, reward, prompt_cfg, cfg, vocabulary))
            spelled = speller.correct(query, shown) if speller is not None else query
            if spelled != query:  # the same candidates written on the corrected query, and it alone
                pool.append(("spelling", [spelled]))
                pool.extend(("spelling", expansions) for _, expansions in
                            _rule_candidates(spelled, qid, shown, reward, prompt_cfg, cfg, vocabulary))
        flat = [(qid, origin, expansions) for qid, pool in zip(group, pools) for origin, expansions in pool]
        parts = reward.score([qid for qid, _, _ in flat], [expansions for _, _, expansions in flat])
        sizes = [len(p) for p in pools]
        offsets = [sum(sizes[:g]) for g in range(len(group))]
        sampled_rewards.extend(r for (_, origin, _), r in zip(flat, parts.total.tolist()) if origin == "samples")
        best_rewards.extend(parts.total[o:o + n].max().item() for o, n in zip(offsets, sizes) if n)
        for g, row in enumerate(best_in_groups(parts.total, sizes, cfg.min_reward)):
            kept = parts.expansions_used[row][: prompt_cfg.num_expansions] if row is not None else []
            if kept:
                kept_from[flat[row][1]] += 1
                examples.append(DistillExample(group[g], prompts[g], "\n".join(kept), parts.total[row].item(),
                                               flat[row][1]))
    stats = {
        "queries": len(qids),
        "kept": len(examples),
        "kept_from": kept_from,
        "reward_sampled_mean": sum(sampled_rewards) / len(sampled_rewards) if sampled_rewards else None,
        "reward_best_of_n_mean": sum(best_rewards) / len(best_rewards) if best_rewards else None,
        "reward_kept_mean": sum(e.reward for e in examples) / max(1, len(examples)),
    }
    return examples, stats


def _rule_candidates(query: str, qid: str, shown: list[str], reward: SearchReward, prompt_cfg: PromptConfig,
                     cfg: DistillConfig, vocabulary: CatalogVocabulary | None) -> list[tuple[str, list[str]]]:
    """The written (not sampled) candidates for ``query``: its context and label candidates, as configured."""
    pool: list[tuple[str, list[str]]] = []
    if not (cfg.context_candidates or cfg.label_candidates):  # a sample-only pool: no rules, no labels
        return pool
    limits = (reward.rules.max_words, reward.rules.max_chars)
    if cfg.context_candidates:
        expansions = title_expansions(query, shown[: cfg.context_titles or len(shown)], *limits)
        if cfg.context_prefixes:
            most = min(len(expansions), prompt_cfg.num_expansions)
            pool.extend(("context", expansions[:n]) for n in range(1, most + 1))
        else:
            pool.extend(("context", [e]) for e in expansions)
    if cfg.label_candidates:
        titles = relevant_titles(reward.dataset, qid)
        if cfg.label_source == "shown":
            on_screen = set(shown)
            titles = [t for t in titles if t in on_screen]
        terms = vocabulary.feedback_terms(query, titles, cfg.label_terms)
        candidates = [term_expansions(query, terms, n, prompt_cfg.num_expansions, *limits) for n in (2, 1)]
        pool.extend(("labels", c) for i, c in enumerate(candidates) if c and c not in candidates[:i])
    return pool


def relevant_titles(dataset, qid: str) -> list[str]:
    """Titles of the items judged relevant to ``qid`` (:meth:`retrieval.Dataset.relevant`)."""
    return [dataset.product_texts[row] for row in dataset.relevant(qid)]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def distill(model, tokenizer, reward: SearchReward, prompt_cfg: PromptConfig, train_qids: list[str],
            cfg: DistillConfig, run_config: dict | None = None) -> dict:
    """Pick best-of-N expansions on ``cfg.num_queries`` shuffled training queries, fine-tune, save the policy.

    ``run_config`` (the whole resolved config) is saved in ``distill.json``: the picks depend on the reward's
    settings too, not only on ``[distill]``.
    """
    use_cores()
    out = Path(cfg.output_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose another distill.output_dir")
    qids = sorted(train_qids)
    random.Random(cfg.seed).shuffle(qids)
    qids = qids[: cfg.num_queries]
    device = next(model.parameters()).device
    cfg = replace(cfg, precision=resolve_precision(cfg.precision, device, "distill.precision"))
    run_config = record_precision(run_config or {}, "distill", cfg.precision)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    t0 = time.perf_counter()
    examples, stats = collect_examples(model, tokenizer, reward, prompt_cfg, qids, cfg, generator)
    stats["collect_s"] = time.perf_counter() - t0
    pool = (f"best-of-{cfg.num_samples}{' + context' * cfg.context_candidates}{' + labels' * cfg.label_candidates}"
            f"{' + spelling' * cfg.spelling_candidates}")
    print(f"{pool}: kept {stats['kept']}/{stats['queries']} queries (by source: {stats['kept_from']}); mean reward: "
          f"sampled {_fmt(stats['reward_sampled_mean'])}, best {_fmt(stats['reward_best_of_n_mean'])}")
    t1 = time.perf_counter()
    fitted = [e for e in examples for _ in range(cfg.spelling_repeats if e.origin == "spelling" else 1)]
    stats["fitted"] = len(fitted)
    stats["epoch_loss"] = finetune(model, tokenizer, fitted, cfg)
    stats["finetune_s"] = time.perf_counter() - t1

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary = {"config": asdict(cfg), **stats, "run_config": run_config or {}, **provenance()}
    (out / "distill.json").write_text(json.dumps(summary, indent=1))
    if run_config:
        write_settings(out, run_config)
    with (out / "examples.jsonl").open("w", encoding="utf-8") as f:
        for e in examples:
            f.write(json.dumps(asdict(e), ensure_ascii=False) + "\n")
    return summary
