"""The micro-benchmarks behind the 2026-11-28 memory-traffic fixes, at the bench's shapes (SmolLM2-135M, 4 prompts
x G 8, prompts of ~241 tokens, 32 completion tokens):

- matrix products, fp32 against bf16: a large one, and a decode-shaped one (32 rows);
- one vocabulary-sized element-wise op on 2 rows against 32 rows of ``[rows, 32, 49152]`` fp32 logits;
- one layer's attention forward + backward for the completions: G copies of the prompt's keys (the repeated
  layout) against one copy per group (``policy.shared_prompt``), and one decoding step of each.

    python experiments/probes/memory_traffic.py
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from grpo.host import use_cores
from policy.shared_prompt import SharedPromptLayer, _attention, shared_prompt_mask

N, G, KV, PER_KV, P, T, D, V = 4, 8, 3, 3, 241, 32, 64, 49152


def ms(fn, repeat: int = 10) -> float:
    for _ in range(2):
        fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e3


def products() -> None:
    for dtype in (torch.float32, torch.bfloat16):
        big, weight = torch.randn(1024, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
        small = torch.randn(32, 576, dtype=dtype)
        t_big, t_small = ms(lambda: big @ weight, 50), ms(lambda: small @ weight, 200)
        print(f"product {dtype}: [1024,576]x[576,1536] {t_big:.2f} ms ({2 * 1024 * 576 * 1536 / t_big / 1e6:.0f} "
              f"GFLOP/s); [32,576]x[576,1536] {t_small * 1e3:.0f} us")


def vocabulary_ops() -> None:
    for rows in (2, 32):
        logits, lse = torch.randn(rows, T, V), torch.randn(rows, T, 1)
        t = ms(lambda: logits - lse)
        print(f"logits - logsumexp, {rows} rows: {t:.1f} ms ({t / rows:.2f} ms a row)")


def attention() -> None:
    rows, heads = N * G, KV * PER_KV
    dtype = torch.bfloat16
    query = torch.randn(rows, heads, T, D, dtype=dtype, requires_grad=True)
    prompt_k, prompt_v = (torch.randn(N, KV, P, D, dtype=dtype, requires_grad=True) for _ in range(2))
    comp_k, comp_v = (torch.randn(rows, KV, T, D, dtype=dtype, requires_grad=True) for _ in range(2))
    prompt_mask = torch.ones(N, P, dtype=torch.long)

    def repeated():
        k = torch.cat([prompt_k.repeat_interleave(G, 0), comp_k], 2).repeat_interleave(PER_KV, 1)
        v = torch.cat([prompt_v.repeat_interleave(G, 0), comp_v], 2).repeat_interleave(PER_KV, 1)
        mask = torch.cat([torch.ones(T, P, dtype=torch.bool), torch.ones(T, T, dtype=torch.bool).tril()], 1)
        F.scaled_dot_product_attention(query, k, v, attn_mask=mask).float().sum().backward()

    def shared():
        layer = SharedPromptLayer(prompt_k, prompt_v, G, T)
        k, v = layer.update(comp_k, comp_v)
        mask = shared_prompt_mask(prompt_mask, G, PER_KV, T, 0, T)
        _attention(None, query, k, v, mask, scaling=D ** -0.5)[0].float().sum().backward()

    print(f"attention forward + backward, one layer, bf16: repeated {ms(repeated):.1f} ms, shared {ms(shared):.1f} ms")
    with torch.no_grad():  # one decoding step at completion token 16, fp32 keys as in the cache
        q1 = torch.randn(rows, heads, 1, D)
        k_rep, v_rep = torch.randn(rows, KV, P + 16, D), torch.randn(rows, KV, P + 16, D)
        k_sh, v_sh = torch.randn(N, KV, P + G * T, D), torch.randn(N, KV, P + G * T, D)
        mask = shared_prompt_mask(prompt_mask, G, PER_KV, T, 16, 1)
        t_rep = ms(lambda: F.scaled_dot_product_attention(q1.view(rows, KV, PER_KV, D), k_rep, v_rep), 50)
        t_sh = ms(lambda: _attention(None, q1, k_sh, v_sh, mask), 50)
        print(f"attention, one decoding step, one layer, fp32: repeated {t_rep:.2f} ms, shared {t_sh:.2f} ms")


if __name__ == "__main__":
    use_cores()
    products()
    vocabulary_ops()
    attention()
