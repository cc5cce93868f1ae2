"""Generation with eager against compiled decoding (``sample_groups(compiled=...)``), in one process.

``make bench``'s rollout shape: SmolLM2-135M, 4 prompts with 5 result titles each (``bench_policy.SAMPLES``), G 8,
32 new tokens. No EOS ends a row early (``eos_token_ids`` is a token the model never writes), so every rollout
decodes all 32 tokens and the two modes do the same work. In bf16 the sampler is the trainer's
(:class:`policy.precision.SamplingCopy`, bf16 linear weights under autocast). The modes alternate, after a warm-up
of each (the compiled one compiles there); medians of ``--repeats``. It also counts the rows (of 32) that sample the
same 32 tokens in both modes from the same generators. The compiled kernels round differently (fp32 logits ~4e-5
apart), so now and then a draw lands on the other side of a boundary and that row parts from there on. Last, the
question that matters for GRPO: does each sampler draw from the distribution the loss scores? The last rollout of
each mode is scored as the trainer scores it (the fp32 master weights, their layers compiled, under autocast), and
the mean and largest absolute difference of the tokens' log-probs are reported.

    python experiments/probes/decode_compile.py --repeats 5 --out runs/decode_compile.json
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from grpo.host import use_cores
from policy import completion_logprobs, load_policy, sample_groups
from policy.compiled import compile_decoder_layers
from policy.precision import SamplingCopy, autocast

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_policy import build_prompts  # noqa: E402  (the bench's prompts)

NEVER_WRITTEN = 0  # SmolLM2's "<|endoftext|>": the chat model ends turns with "<|im_end|>" instead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("runs/decode_compile.json"))
    args = parser.parse_args()
    threads = use_cores()
    model, tokenizer = load_policy(None, dtype="float32")
    prompts = build_prompts(tokenizer, num_expansions=3, title_chars=50)
    results = {"torch": torch.__version__, "threads": threads, "group_size": args.group_size,
               "max_new_tokens": args.max_new_tokens, "repeats": args.repeats}
    scorer = copy.deepcopy(model)
    compile_decoder_layers(scorer)
    for precision in args.precisions:
        sampler = SamplingCopy(model, precision).model()

        def rollout(compiled: bool, seed: int):
            generators = [torch.Generator().manual_seed(seed * 100 + i) for i in range(len(prompts))]
            with autocast(precision, "cpu"):
                started = time.perf_counter()
                out = sample_groups(sampler, tokenizer, prompts, args.group_size, args.max_new_tokens,
                                    temperature=1.0, generator=generators, eos_token_ids=[NEVER_WRITTEN],
                                    compiled=compiled)
            return time.perf_counter() - started, out

        warmup = {mode: rollout(mode, 0)[0] for mode in (False, True)}
        times, same = {False: [], True: []}, []
        for seed in range(1, args.repeats + 1):
            outs = {}
            for mode in (False, True):
                seconds, outs[mode] = rollout(mode, seed)
                times[mode].append(seconds)
            same.append(int((outs[False].completion_ids == outs[True].completion_ids).all(1).sum()))
        against_scorer = {}
        for mode, out in outs.items():
            with torch.inference_mode(), autocast(precision, "cpu"):
                scored = completion_logprobs(scorer, out.prompt_ids, out.completion_ids, out.completion_mask,
                                             args.group_size)
            gap = (scored - out.sample_logprobs).abs()[out.completion_mask.bool()]
            against_scorer["compiled" if mode else "eager"] = {"mean_abs": gap.mean().item(),
                                                               "max_abs": gap.max().item()}
        eager_s, compiled_s = statistics.median(times[False]), statistics.median(times[True])
        results[precision] = {"eager_s": times[False], "compiled_s": times[True], "eager_median_s": eager_s,
                              "compiled_median_s": compiled_s, "compiled_over_eager": compiled_s / eager_s,
                              "warmup_s": {"eager": warmup[False], "compiled": warmup[True]},
                              "rows_with_same_tokens": same,
                              "sample_logprobs_against_scorer": against_scorer}
        print(f"{precision}: eager {eager_s:.2f} s, compiled {compiled_s:.2f} s ({compiled_s / eager_s:.2f}x); "
              f"first compiled rollout {warmup[True]:.1f} s; rows with the same tokens {same}; log-probs against "
              f"the scorer: {against_scorer}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
