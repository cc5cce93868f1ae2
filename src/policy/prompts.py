"""Prompt construction for query expansion and parsing of the model's completions.

The prompt shows the shopper's query plus the top-k result titles (the "context" in LESER) and asks
for up to N alternative queries, one per line. :func:`parse_completion` turns the generated text back
into a list of candidate queries without judging them: rule checks live in the reward.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You rewrite e-commerce search queries. Given a shopper's query and the top search results, "
    "write up to {n} alternative search queries that would find more relevant products.\n"
    "Rules:\n"
    "- one query per line, nothing else;\n"
    "- at most {w} words per query;\n"
    "- no numbering, bullets or quotes;\n"
    "- no prices, URLs or store names;\n"
    "- do not repeat the original query."
)


@dataclass
class PromptConfig:
    """How the expansion prompt is built.

    ``context_k`` result titles are shown (0 = query only), each cut to ``title_chars`` characters.
    ``system_prompt=None`` uses :data:`DEFAULT_SYSTEM_PROMPT` filled with ``num_expansions``/``max_words``.
    """

    num_expansions: int = 3
    context_k: int = 5
    title_chars: int = 80
    max_prompt_tokens: int = 384
    system_prompt: str | None = None
    max_words: int = 8

    def __post_init__(self) -> None:
        if self.num_expansions < 1:
            raise ValueError("num_expansions must be >= 1")
        if self.context_k < 0:
            raise ValueError("context_k must be >= 0")
        if self.title_chars < 1 or self.max_prompt_tokens < 1 or self.max_words < 1:
            raise ValueError("title_chars, max_prompt_tokens and max_words must be >= 1")

    def system_text(self) -> str:
        """The system message, with the default rules filled in when none was given."""
        if self.system_prompt is not None:
            return self.system_prompt
        return DEFAULT_SYSTEM_PROMPT.format(n=self.num_expansions, w=self.max_words)


def _one_line(text: str) -> str:
    """Collapse all whitespace (incl. newlines, which would break the numbered list) to single spaces."""
    return " ".join(text.split())


def truncate_title(title: str, max_chars: int) -> str:
    """Cut a title to ``max_chars`` characters, preferring a word boundary when one is near the end."""
    title = _one_line(title)
    if len(title) <= max_chars:
        return title
    cut = title[:max_chars]
    space = cut.rfind(" ")
    # Only back off to the space if it keeps most of the budget; long unbroken tokens are cut hard.
    return (cut[:space] if space >= max_chars // 2 else cut).rstrip()


def user_message(query: str, titles: list[str], num_expansions: int) -> str:
    """The user turn: query, numbered result titles (if any), and the request."""
    parts = [f"Query: {query}"]
    if titles:
        numbered = "\n".join(f"{i}. {title}" for i, title in enumerate(titles, start=1))
        parts.append(f"Top results:\n{numbered}")
    parts.append(f"Write up to {num_expansions} alternative search queries, one per line.")
    return "\n\n".join(parts)


def render_chat(tokenizer, system: str, user: str) -> str:
    """Chat-template text ending with the assistant turn opener; plain text when there is no template."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{system}\n\n{user}\n\nAlternative queries:\n"


def count_tokens(tokenizer, text: str) -> int:
    """Tokens in already-templated text (special tokens are part of the text, so none are added)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _truncate_query_to_budget(tokenizer, query: str, system: str, cfg: PromptConfig) -> str:
    """Last resort: drop tokens from the query's tail until the context-free prompt fits."""
    ids = tokenizer(query, add_special_tokens=False)["input_ids"]
    lo, hi = 1, len(ids)  # binary search the longest prefix that fits
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = tokenizer.decode(ids[:mid], skip_special_tokens=True).strip()
        text = render_chat(tokenizer, system, user_message(candidate, [], cfg.num_expansions))
        if candidate and count_tokens(tokenizer, text) <= cfg.max_prompt_tokens:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    if best is None:
        raise ValueError(f"max_prompt_tokens={cfg.max_prompt_tokens} is too small for the prompt template")
    log.warning("query truncated from %d to fit max_prompt_tokens=%d", len(ids), cfg.max_prompt_tokens)
    return best


def build_prompt(tokenizer, query: str, context_titles: list[str], cfg: PromptConfig) -> str:
    """Build the expansion prompt for one query.

    Shows the first ``cfg.context_k`` titles; while the tokenized prompt exceeds
    ``cfg.max_prompt_tokens`` titles are dropped from the end. The query is never dropped; only if
    it alone overflows is its tail truncated (with a warning).
    """
    query = _one_line(query or "")
    if not query:
        raise ValueError("query must be a non-empty string")
    system = cfg.system_text()
    titles = [truncate_title(t, cfg.title_chars) for t in context_titles[: cfg.context_k]]
    titles = [t for t in titles if t]
    while True:
        text = render_chat(tokenizer, system, user_message(query, titles, cfg.num_expansions))
        if count_tokens(tokenizer, text) <= cfg.max_prompt_tokens:
            return text
        if not titles:
            break
        titles.pop()
    query = _truncate_query_to_budget(tokenizer, query, system, cfg)
    return render_chat(tokenizer, system, user_message(query, [], cfg.num_expansions))


# --- completion parsing -------------------------------------------------------------------------

DEFAULT_MAX_LINES = 32
# Bullets and list numbering: "1.", "1)", "(1)", "1:", "-", "*", "•", "–". Digits need a delimiter so
# that queries starting with a number ("4k tv", "2 person tent") survive.
_LIST_MARKER = re.compile(r"^(?:[-*•·–—>]+|\(?\d{1,2}[.):\]](?!\d)|#+)\s*")
_LABEL = re.compile(
    r"^(?:(?:alternative|expanded|search|new)\s+)?(?:expansion|query|queries|rewrite|alternative)s?"
    r"\s*\d*\s*[:：]\s+",
    re.IGNORECASE,
)
# A line that is nothing but a label ("Alternative Search Query 1", "Query 2"): a header, not a query. A
# 135M policy learned to emit these once they passed as expansions, since they broke no rule.
_LABEL_ONLY = re.compile(
    r"^(?:(?:alternative|expanded|search|new|related)\s+)*"
    r"(?:expansion|query|queries|rewrite|alternative|option|suggestion)s?(?:\s*#?\d+)?$",
    re.IGNORECASE,
)
_EMPHASIS = re.compile(r"\*\*|__")  # markdown bold around a header: "**Query 1:**"
_QUOTES = "\"'`“”‘’«»„"
_TRAILING = ".,;:!?。，、"


def _clean_line(line: str) -> str:
    """Strip list markers, labels, surrounding quotes and trailing punctuation from one line."""
    line = _one_line(line)
    for _ in range(3):  # markers can stack: "1. - foo", "- Query: foo"
        stripped = _LABEL.sub("", _LIST_MARKER.sub("", line)).strip()
        if stripped == line:
            break
        line = stripped
    line = line.strip().strip(_QUOTES).strip()
    line = line.rstrip(_TRAILING).rstrip().strip(_QUOTES).strip()
    return _one_line(line)


def clean_item(raw: str) -> str:
    """One line of a completion as :func:`parse_completion` keeps it (before dropping empty and label-only lines):
    markdown emphasis, list markers, labels, quotes and trailing punctuation removed."""
    return _clean_line(_EMPHASIS.sub("", raw))


def parse_completion(text: str, max_items: int | None = None) -> list[str]:
    """Split a completion into candidate queries, one per line.

    Cleans each line (markdown bold, numbering, bullets, ``Query:``-style labels, quotes, trailing
    punctuation, whitespace) and drops empty lines, header lines ending in ``:`` and lines that are only a
    label (``Alternative Query 2``). It deliberately does NOT
    deduplicate or apply the platform rules: the reward's rule checker must see duplicates and
    violations to penalise them. Comma-separated items on one line stay one query (commas are
    legitimate inside queries). The result is capped at ``2 * max_items`` (or 32) entries so a
    repetition loop cannot flood the retriever.
    """
    if not text:
        return []
    cap = 2 * max_items if max_items else DEFAULT_MAX_LINES
    items: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _one_line(_EMPHASIS.sub("", raw)).endswith(":"):  # "Here are 3 queries:" introduces the list
            continue
        line = clean_item(raw)
        if line and not _LABEL_ONLY.match(line):
            items.append(line)
            if len(items) >= cap:
                break
    return items
