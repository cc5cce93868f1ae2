"""Prompt building and completion parsing."""
from __future__ import annotations

import logging

import pytest

from policy import PromptConfig, build_prompt, parse_completion
from policy.prompts import DEFAULT_SYSTEM_PROMPT, count_tokens, truncate_title

TITLES = [
    "Modern Loveseat Sofa, Small Couch for Living Room and Apartment, Grey Linen Fabric with Wooden Legs",
    "Convertible Futon Sofa Bed",
    "Compact 2-Seater Couch",
    "Mid Century Modern Accent Chair",
    "Small Sectional Sofa with Reversible Chaise",
    "A sixth title that must not be shown",
]


def test_prompt_contains_query_titles_and_rules(tiny_tokenizer):
    cfg = PromptConfig(num_expansions=4, max_words=6, title_chars=30, max_prompt_tokens=4096)
    text = build_prompt(tiny_tokenizer, "couch small apartment", TITLES, cfg)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert "couch small apartment" in text
    assert "up to 4" in text and "6 words" in text
    assert "5. Small Sectional Sofa with" in text and "sixth" not in text
    assert "Grey Linen" not in text  # truncated to 30 characters


def test_context_k_zero_and_custom_system(tiny_tokenizer):
    cfg = PromptConfig(context_k=0, system_prompt="CUSTOM RULES", max_prompt_tokens=4096)
    text = build_prompt(tiny_tokenizer, "drill", TITLES, cfg)
    assert "CUSTOM RULES" in text and "Top results" not in text and "Sofa" not in text


def test_budget_drops_titles_from_the_end(tiny_tokenizer):
    full = build_prompt(tiny_tokenizer, "couch", TITLES, PromptConfig(max_prompt_tokens=100_000))
    budget = count_tokens(tiny_tokenizer, full) - 5
    text = build_prompt(tiny_tokenizer, "couch", TITLES, PromptConfig(max_prompt_tokens=budget))
    assert count_tokens(tiny_tokenizer, text) <= budget
    assert "1. Modern Loveseat" in text and "5. Small Sectional" not in text


def test_overlong_query_is_truncated_at_the_tail(tiny_tokenizer, caplog):
    query = "cordless drill " * 400
    no_ctx = build_prompt(tiny_tokenizer, "cordless drill", [], PromptConfig(max_prompt_tokens=100_000))
    budget = count_tokens(tiny_tokenizer, no_ctx) + 20
    with caplog.at_level(logging.WARNING):
        text = build_prompt(tiny_tokenizer, query, TITLES, PromptConfig(max_prompt_tokens=budget))
    assert count_tokens(tiny_tokenizer, text) <= budget
    assert "Query: cordless drill" in text and "Top results" not in text
    assert "truncated" in caplog.text


def test_budget_too_small_for_template_raises(tiny_tokenizer):
    with pytest.raises(ValueError, match="too small"):
        build_prompt(tiny_tokenizer, "drill", [], PromptConfig(max_prompt_tokens=5))


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_raises(tiny_tokenizer, query):
    with pytest.raises(ValueError):
        build_prompt(tiny_tokenizer, query, TITLES, PromptConfig())


def test_plain_fallback_without_chat_template(tiny_tokenizer):
    tok = tiny_tokenizer.__class__(tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="<|im_end|>")
    tok.chat_template = None
    text = build_prompt(tok, "drill", TITLES[:1], PromptConfig())
    assert "<|im_start|>" not in text and "Query: drill" in text


def test_default_system_prompt_is_filled():
    text = PromptConfig(num_expansions=2, max_words=5).system_text()
    assert text == DEFAULT_SYSTEM_PROMPT.format(n=2, w=5) and "{" not in text


def test_truncate_title_prefers_word_boundary():
    assert truncate_title("grey linen sofa", 12) == "grey linen"
    assert truncate_title("abcdefghijklmnop", 5) == "abcde"
    assert truncate_title("  multi\nline   title ", 80) == "multi line title"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("\n\n  \n", []),
        ("small loveseat", ["small loveseat"]),
        ("1. small loveseat\n2) apartment sofa\n3: futon", ["small loveseat", "apartment sofa", "futon"]),
        ("- loveseat\n* futon\n• sleeper sofa\n– chaise", ["loveseat", "futon", "sleeper sofa", "chaise"]),
        ('"small couch"\n“compact sofa”\n\'futon\'', ["small couch", "compact sofa", "futon"]),
        ("Expansion 1: small couch\nQuery: futon\nalternative query: loveseat",
         ["small couch", "futon", "loveseat"]),
        ("small couch.\nfuton!!\nloveseat,", ["small couch", "futon", "loveseat"]),
        ("Here are 3 queries:\nsmall couch", ["small couch"]),
        ("canapé   petit\t salon\n小型沙发", ["canapé petit salon", "小型沙发"]),
        ("small couch\r\nfuton\r\n\r\nloveseat\rsofa", ["small couch", "futon", "loveseat", "sofa"]),
        ("4k tv 55 inch\n2 person tent\n10.5 mens shoes", ["4k tv 55 inch", "2 person tent", "10.5 mens shoes"]),
        ("sofa, couch, loveseat", ["sofa, couch, loveseat"]),
        ("1. - small couch", ["small couch"]),
        # headers a trained 135M policy emitted to score without breaking a rule: labels are not queries
        ("**Alternative Search Query 1:**\ncordless drill kit\n**Alternative Query 2**\nimpact driver",
         ["cordless drill kit", "impact driver"]),
        ("Alternative Search Query 1**\nQuery 2\nexpansion #3", []),
        ("**small couch**", ["small couch"]),
        ("search query optimization book", ["search query optimization book"]),  # a label only when alone
    ],
)
def test_parse_completion(text, expected):
    assert parse_completion(text) == expected


def test_parse_keeps_duplicates():
    assert parse_completion("sofa\nsofa\n1. sofa", max_items=3) == ["sofa", "sofa", "sofa"]


def test_parse_caps_repetition_loops():
    loop = "\n".join(["couch couch couch"] * 500)
    assert len(parse_completion(loop, max_items=3)) == 6
    assert len(parse_completion(loop)) == 32
