"""Decoding that never ends a line equal to an earlier line of its completion, or to the query.

A policy trained to write a few expansions, one per line, often repeats its most likely line when decoded
greedily: the platform drops the repeats, so the query gets one expansion where the policy was asked for three.
:class:`DistinctLines` forbids the tokens that would end such a line (tokens holding a newline, and EOS), so the
decoder goes on writing until the line differs. Only the end of a line is forbidden: a line may start as an
earlier one does (expansions often start with the query). A last line cut by ``max_new_tokens`` is never ended,
so it may repeat; the platform drops it as it drops any repeat.

Masking changes the distribution, so the log-probs recorded under it are not the policy's: it is for
inference (``eval``, ``serve``, ``expand``), never for training rollouts.
"""
from __future__ import annotations

import re
import weakref
from dataclasses import dataclass

import torch

from .prompts import clean_item

_NEWLINES = re.compile(r"\r\n|\r|\n")


def line_key(line: str) -> str:
    """What makes two lines the same expansion: the line as :func:`policy.parse_completion` keeps it, without
    whitespace, case folded. For parsed items this is the platform rules' ``duplicate`` key."""
    return re.sub(r"\s+", "", clean_item(line)).casefold()


@dataclass(frozen=True)
class LineEnds:
    """The vocabulary's line-ending tokens: ``ids`` (``LongTensor [n]``, every token whose text holds a newline)
    and, for the few whose text has letters or digits before its newline (``"ing\\n"``), that text."""

    ids: torch.Tensor
    prefixes: dict[int, str]


_LINE_ENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def line_ends(tokenizer) -> LineEnds:
    """:class:`LineEnds` of ``tokenizer``, computed once per tokenizer object."""
    if tokenizer not in _LINE_ENDS:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        ids = [i for i, t in enumerate(texts) if _NEWLINES.search(t)]
        prefixes = {i: _NEWLINES.split(texts[i])[0] for i in ids}
        _LINE_ENDS[tokenizer] = LineEnds(torch.tensor(ids, dtype=torch.long),
                                         {i: p for i, p in prefixes.items() if any(c.isalnum() for c in p)})
    return _LINE_ENDS[tokenizer]


class DistinctLines:
    """Per-row state of a decode: the keys of the lines written so far, and the open line.

    ``banned``: per row, texts no line may equal (its query). ``stop_ids``: the EOS ids. Call :meth:`mask` on
    each step's logits before picking, then :meth:`update` with the picked tokens.
    """

    def __init__(self, tokenizer, banned: list[list[str]], stop_ids: torch.Tensor):
        self.tokenizer = tokenizer
        self.ends = line_ends(tokenizer)
        self.end_ids = torch.cat([self.ends.ids, stop_ids.cpu()]).unique()
        self.seen = [{line_key(t) for t in texts} - {""} for texts in banned]
        self.carry = ["" for _ in banned]  # text a token put after its newline: the open line's start
        self.open_tokens: list[list[int]] = [[] for _ in banned]
        self.banned: list[torch.Tensor | None] = [None for _ in banned]  # per row: the ids it may not pick next

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits [B, V]`` with the tokens that would end a repeated line at -inf."""
        rows = [(b, ids) for b, ids in enumerate(self.banned) if ids is not None]
        if not rows:
            return logits
        logits = logits.clone()
        for b, ids in rows:
            logits[b, ids.to(logits.device)] = float("-inf")
        return logits

    def update(self, tokens: torch.Tensor, alive: torch.Tensor) -> None:
        """Add each live row's new token ``tokens [B]`` to its open line (a newline closes it), then work out
        what the row may not pick next."""
        for b, (token, live) in enumerate(zip(tokens.tolist(), alive.tolist())):
            self.banned[b] = None
            if not live:
                continue
            self.open_tokens[b].append(token)
            text = self.carry[b] + self.tokenizer.decode(self.open_tokens[b])
            if _NEWLINES.search(text):
                *closed, self.carry[b] = _NEWLINES.split(text)
                self.seen[b].update(k for k in map(line_key, closed) if k)
                self.open_tokens[b], text = [], self.carry[b]
            self.banned[b] = self._line_ends_to_ban(text, self.seen[b])

    def _line_ends_to_ban(self, open_text: str, seen: set[str]) -> torch.Tensor | None:
        """The line-ending ids that would close ``open_text`` as a line already in ``seen``."""
        if line_key(open_text) in seen:
            return self.end_ids
        ids = [i for i, prefix in self.ends.prefixes.items() if line_key(open_text + prefix) in seen]
        return torch.tensor(ids, dtype=torch.long) if ids else None
