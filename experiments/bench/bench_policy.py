"""Benchmark the policy's GRPO hot paths on the real SmolLM2-135M (fp32, CPU by default).

(a) Group sampling throughput: ``policy.sample_groups`` (prompt encoded once, KV cache shared by the
    G samples) vs HF ``model.generate(num_return_sequences=G, do_sample=True)``.
(b) Scoring, forward + backward: ``policy.completion_logprobs`` (shared prompt, logits only at
    completion positions) vs ``policy.naive_completion_logprobs`` (full forward, full logits).

Usage:
    python experiments/bench/bench_policy.py [--group-size 8] [--max-new-tokens 32] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from policy import (
    PromptConfig,
    build_prompt,
    completion_logprobs,
    load_policy,
    naive_completion_logprobs,
    sample_groups,
)
from policy.sampling import resolve_eos_ids

# (query, top-5 result titles): realistic ESCI-style product search context, no data dependency.
SAMPLES: list[tuple[str, list[str]]] = [
    ("couch small apartment", [
        "Modern Loveseat Sofa, Small Couch for Living Room, Grey Linen Fabric with Solid Wood Legs",
        "Convertible Futon Sofa Bed, Memory Foam Seat, Compact Sleeper for Apartments and Dorms",
        "2-Seater Velvet Couch with Tufted Back and Gold Metal Legs, Mid Century Modern, Green",
        "Small Sectional Sofa with Reversible Chaise Lounge, L-Shaped Couch for Small Spaces",
        "Inflatable Lounge Couch, Portable Air Sofa for Camping, Beach and Indoor Use, Blue",
    ]),
    ("cordless drill kit", [
        "20V MAX Cordless Drill/Driver Kit, 1/2 inch Chuck, 2 Lithium-Ion Batteries and Charger",
        "Brushless Hammer Drill, 1/2 in, 18V, Tool Only, Variable Speed with LED Work Light",
        "Compact Cordless Screwdriver Set with 30 Bits, USB Rechargeable, Torque Adjustable",
        "Drill Bit Set, 246 Piece Titanium Twist Drill Bits for Wood, Metal and Plastic",
        "12V Cordless Power Drill Set with Case, 3/8 inch Keyless Chuck, 15+1 Clutch Settings",
    ]),
    ("warm white led bulbs dimmable", [
        "LED Light Bulbs 60 Watt Equivalent, A19 Soft White 2700K, E26 Base, Dimmable, 12 Pack",
        "Smart Wi-Fi Light Bulb, Color Changing, Works with Alexa and Google Home, 4 Pack",
        "Edison Vintage LED Filament Bulbs, ST64, 2700K Warm Amber Glass, Non-Dimmable, 6 Pack",
        "Daylight LED Bulbs 100W Equivalent, 5000K Bright White, 1600 Lumens, Energy Saving",
        "Dimmable Candelabra LED Bulbs E12, 40W Equivalent, Warm White for Chandeliers",
    ]),
    ("running shoes women wide", [
        "Women's Wide Width Road Running Shoe, Lightweight Mesh Upper, Cushioned Midsole, Black",
        "Trail Running Shoes for Women, Waterproof, Grippy Rubber Outsole, Wide Toe Box",
        "Womens Walking Sneakers Slip On, Breathable Knit, Arch Support, Memory Foam Insole",
        "Men's Fresh Foam Running Shoe, Neutral Support, Extra Wide 4E, Grey and Orange",
        "Compression Running Socks for Women, Ankle Support, Moisture Wicking, 6 Pairs",
    ]),
]


@dataclass
class Timing:
    """Median wall time of ``repeats`` runs plus what was produced per run."""

    seconds: float
    tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def build_prompts(tokenizer, num_expansions: int, title_chars: int) -> list[str]:
    cfg = PromptConfig(num_expansions=num_expansions, context_k=5, title_chars=title_chars)
    return [build_prompt(tokenizer, query, titles, cfg) for query, titles in SAMPLES]


def generated_tokens(sequences: torch.Tensor, eos_ids: set[int]) -> int:
    """Tokens generated per row up to and including the first EOS (what ``completion_mask`` counts)."""
    total = 0
    for row in sequences.tolist():
        stop = next((i for i, tok in enumerate(row) if tok in eos_ids), len(row) - 1)
        total += stop + 1
    return total


def time_median(fn, repeats: int) -> Timing:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        tokens = fn()
        runs.append((time.perf_counter() - started, tokens))
    seconds = statistics.median(r[0] for r in runs)
    return Timing(seconds, int(statistics.median(r[1] for r in runs)))


def bench_sampling(model, tokenizer, prompts, args) -> dict:
    """(a) tokens/s of sample_groups vs HF generate on the same prompts."""
    generator = torch.Generator().manual_seed(args.seed)

    def ours() -> int:
        rollout = sample_groups(model, tokenizer, prompts, args.group_size, max_new_tokens=args.max_new_tokens,
                                temperature=1.0, generator=generator)
        return int(rollout.completion_mask.sum())

    eos_ids = set(resolve_eos_ids(model, tokenizer))
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)

    def hf() -> int:
        with torch.inference_mode():
            out = model.generate(**batch, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                                 num_return_sequences=args.group_size, max_new_tokens=args.max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(eos_ids))
        return generated_tokens(out[:, batch["input_ids"].shape[1]:], eos_ids)

    ours(), hf()  # warm-up (allocator, thread pools)
    ours_t, hf_t = time_median(ours, args.repeats), time_median(hf, args.repeats)
    return {
        "sample_groups": {**asdict(ours_t), "tokens_per_s": ours_t.tokens_per_s},
        "hf_generate": {**asdict(hf_t), "tokens_per_s": hf_t.tokens_per_s},
        "speedup_tokens_per_s": ours_t.tokens_per_s / hf_t.tokens_per_s,
    }


def bench_scoring(model, rollout, args) -> dict:
    """(b) forward+backward time of completion_logprobs vs the naive full-logits scorer."""

    def run(fn) -> int:
        model.zero_grad(set_to_none=True)
        logprobs = fn(model, rollout.prompt_ids, rollout.completion_ids, rollout.completion_mask,
                      rollout.group_size)
        (logprobs * rollout.completion_mask).sum().backward()
        return int(rollout.completion_mask.sum())

    with torch.no_grad():
        fast = completion_logprobs(model, rollout.prompt_ids, rollout.completion_ids, rollout.completion_mask,
                                   rollout.group_size)
        naive = naive_completion_logprobs(model, rollout.prompt_ids, rollout.completion_ids,
                                          rollout.completion_mask, rollout.group_size)
    run(completion_logprobs)  # warm-up
    fast_t = time_median(lambda: run(completion_logprobs), args.repeats)
    naive_t = time_median(lambda: run(naive_completion_logprobs), args.repeats)
    model.zero_grad(set_to_none=True)
    return {
        "completion_logprobs_fwd_bwd_s": fast_t.seconds,
        "naive_fwd_bwd_s": naive_t.seconds,
        "speedup": naive_t.seconds / fast_t.seconds,
        "max_abs_diff": float((fast - naive).abs().max()),
        "rollout_shape": list(rollout.completion_ids.shape),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="HF id or dir; default: bundled SmolLM2-135M-Instruct")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--title-chars", type=int, default=80, help="PromptConfig.title_chars (prompt length)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=Path("runs/bench/bench_policy.json"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, tokenizer = load_policy(args.model, dtype="float32", device="cpu")
    prompts = build_prompts(tokenizer, num_expansions=3, title_chars=args.title_chars)
    prompt_tokens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    print(f"prompts: {len(prompts)}, tokens {prompt_tokens}, G={args.group_size}, threads={args.threads}")

    sampling = bench_sampling(model, tokenizer, prompts, args)
    print(f"(a) sample_groups {sampling['sample_groups']['tokens_per_s']:.1f} tok/s | "
          f"HF generate {sampling['hf_generate']['tokens_per_s']:.1f} tok/s | "
          f"ratio {sampling['speedup_tokens_per_s']:.2f}x")

    rollout = sample_groups(model, tokenizer, prompts, args.group_size, max_new_tokens=args.max_new_tokens,
                            generator=torch.Generator().manual_seed(args.seed))
    scoring = bench_scoring(model, rollout, args)
    print(f"(b) completion_logprobs fwd+bwd {scoring['completion_logprobs_fwd_bwd_s']:.2f}s | "
          f"naive {scoring['naive_fwd_bwd_s']:.2f}s | ratio {scoring['speedup']:.2f}x "
          f"(max |diff| {scoring['max_abs_diff']:.1e})")

    result = {
        "model": args.model or "SmolLM2-135M-Instruct (bundled GGUF, dequantised fp32)",
        "device": "cpu", "threads": args.threads, "torch": torch.__version__, "platform": platform.platform(),
        "group_size": args.group_size, "title_chars": args.title_chars, "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
        "prompt_tokens": prompt_tokens, "sampling": sampling, "scoring": scoring,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
