"""Decoding with distinct lines: no line ends equal to an earlier one or to the query."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from policy import expand_queries
from policy._batching import cache_kwarg
from policy.lines import DistinctLines, line_ends, line_key
from policy.prompts import PromptConfig, parse_completion
from policy.sampling import sample_groups


class Scripted(nn.Module):
    """The tiny Llama's cache mechanics, with logits that depend only on the last input token: ``table[token]``."""

    def __init__(self, inner: nn.Module, table: torch.Tensor):
        super().__init__()
        self.inner, self.config, self.table = inner, inner.config, table
        self.kw = cache_kwarg(inner)

    def forward(self, input_ids, cache=None, logits_to_keep=0, **kwargs):
        out = self.inner(input_ids=input_ids, logits_to_keep=logits_to_keep, **{self.kw: cache}, **kwargs)
        out.logits = self.table[input_ids][:, -out.logits.shape[1]:]
        return out


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def looping_model(model, tokenizer, end_with_eos: bool = False) -> Scripted:
    """Greedy answer: "drill" on every line, forever ("couch" is each line's second choice). With
    ``end_with_eos``, EOS (not a newline) is the first choice after "drill"."""
    dr, ill = ids(tokenizer, "drill")
    co, uch = ids(tokenizer, "couch")
    (newline,) = ids(tokenizer, "\n")
    table = torch.zeros(len(tokenizer), len(tokenizer))
    table[:, dr] = 5.0  # every prompt ends somewhere: start a line with "dr"
    table[dr, ill] = 9.0
    table[ill, newline], table[ill, co] = 8.0, 7.0
    if end_with_eos:
        table[ill, tokenizer.eos_token_id] = 8.5
    table[co, uch] = 9.0
    table[uch, newline] = 8.0
    table[newline, dr], table[newline, co] = 9.0, 6.0
    return Scripted(model, table)


@pytest.fixture
def looping(tiny_llama, tiny_tokenizer):
    return looping_model(tiny_llama, tiny_tokenizer)


def keys(text: str) -> list[str]:
    return [line_key(line) for line in parse_completion(text)]


def test_greedy_decoding_repeats_a_line_without_the_guard(looping, tiny_tokenizer):
    rollout = sample_groups(looping, tiny_tokenizer, ["find it"], 1, max_new_tokens=12, temperature=0.0)
    assert keys(rollout.texts[0])[:3] == ["drill", "drill", "drill"]


def test_no_line_repeats_an_earlier_line_or_the_query(looping, tiny_tokenizer):
    for query in ["anything", "Drill"]:
        rollout = sample_groups(looping, tiny_tokenizer, ["find it", "find it"], 2, max_new_tokens=16,
                                temperature=0.0, distinct_from=[query, query])
        for text, cut in zip(rollout.texts, rollout.truncated.tolist()):
            lines = keys(text)[:-1] if cut else keys(text)  # a line cut by max_new_tokens was never ended
            assert len(lines) >= 2 and len(set(lines)) == len(lines), text
            assert line_key(query) not in lines, text


def test_expand_queries_passes_the_query_to_the_guard(looping, tiny_tokenizer):
    cfg = PromptConfig(num_expansions=3)
    plain, = expand_queries(looping, tiny_tokenizer, ["drill"], [[]], cfg, max_new_tokens=12)
    guarded, = expand_queries(looping, tiny_tokenizer, ["drill"], [[]], cfg, max_new_tokens=12, distinct_lines=True)
    assert plain[0] == "drill"
    assert "drill" not in [line_key(g) for g in guarded] and len(set(map(line_key, guarded))) == len(guarded)


def test_each_row_is_kept_apart_from_its_own_query_across_chunks_and_groups(looping, tiny_tokenizer):
    # Two prompts in separate chunks, two samples each: rows 0-1 belong to "drill", rows 2-3 to "couch".
    rollout = sample_groups(looping, tiny_tokenizer, ["find it", "find it"], 2, max_new_tokens=8, temperature=0.0,
                            distinct_from=["drill", "couch"], groups_per_batch=1)
    first_lines = [keys(text)[0] for text in rollout.texts]
    assert first_lines[0] == first_lines[1] != "drill"
    assert first_lines[2] == first_lines[3] == "drill"
    cfg = PromptConfig(num_expansions=3)
    by_one = expand_queries(looping, tiny_tokenizer, ["drill", "couch"], [[], []], cfg, max_new_tokens=8,
                            batch_size=1, distinct_lines=True)
    assert line_key(by_one[0][0]) != "drill" and line_key(by_one[1][0]) == "drill"


def test_eos_cannot_end_a_repeated_line_either(tiny_llama, tiny_tokenizer):
    model = looping_model(tiny_llama, tiny_tokenizer, end_with_eos=True)
    plain = sample_groups(model, tiny_tokenizer, ["find it"], 1, max_new_tokens=8, temperature=0.0)
    guarded = sample_groups(model, tiny_tokenizer, ["find it"], 1, max_new_tokens=8, temperature=0.0,
                            distinct_from=["drill"])
    assert keys(plain.texts[0]) == ["drill"] and not plain.truncated[0]
    assert keys(guarded.texts[0])[0] != "drill"


class CharTokenizer:
    """A tokenizer whose tokens are the given strings: enough for :class:`DistinctLines`."""

    def __init__(self, vocab: list[str]):
        self.vocab = vocab

    def __len__(self):
        return len(self.vocab)

    def decode(self, tokens):
        return "".join(self.vocab[t] for t in tokens)

    def batch_decode(self, rows):
        return [self.decode(r) for r in rows]


def run_tokens(guard: DistinctLines, tokens: list[int]) -> None:
    for t in tokens:
        guard.update(torch.tensor([t]), torch.tensor([True]))


def test_line_ends_and_the_open_line_across_tokens_that_hold_a_newline():
    tok = CharTokenizer(["dr", "ill", "\n", "\n\n", "ill\n", ".\ndr", "<eos>", "x"])
    ends = line_ends(tok)
    assert ends.ids.tolist() == [2, 3, 4, 5] and ends.prefixes == {4: "ill"}
    guard = DistinctLines(tok, [["query"]], torch.tensor([6]))
    run_tokens(guard, [0, 1, 5])  # "drill" closed by ".\ndr", which opens the next line with "dr"
    assert guard.seen[0] == {"query", "drill"} and guard.carry[0] == "dr"
    assert guard.banned[0].tolist() == [4]  # only "ill\n" would close "dr" + "ill" = "drill"
    run_tokens(guard, [1])  # the open line is "drill" again: every line end and EOS are banned
    assert guard.banned[0].tolist() == [2, 3, 4, 5, 6]
    masked = guard.mask(torch.zeros(1, len(tok)))
    assert masked[0].isinf().tolist() == [False, False, True, True, True, True, True, False]
    run_tokens(guard, [7])
    assert guard.banned[0] is None and not guard.mask(torch.zeros(1, len(tok))).isinf().any()


def test_tiny_tokenizer_line_ends(tiny_tokenizer):
    ends = line_ends(tiny_tokenizer)
    assert ids(tiny_tokenizer, "\n")[0] in ends.ids.tolist()
    assert all(set("\r\n") & set(tiny_tokenizer.decode([i])) for i in ends.ids.tolist())
    assert ids(tiny_tokenizer, "drill")[0] not in ends.ids.tolist()
    assert line_ends(tiny_tokenizer) is ends  # computed once


def test_a_dead_row_is_left_alone(tiny_tokenizer):
    guard = DistinctLines(tiny_tokenizer, [["drill"]], torch.tensor([tiny_tokenizer.eos_token_id]))
    for token in ids(tiny_tokenizer, "drill"):
        guard.update(torch.tensor([token]), torch.tensor([True]))
    assert guard.banned[0] is not None
    guard.update(torch.tensor([0]), torch.tensor([False]))
    assert guard.banned[0] is None and guard.open_tokens[0] == ids(tiny_tokenizer, "drill")


def test_line_key_ignores_numbering_emphasis_case_spaces_and_trailing_punctuation():
    assert line_key("1. Cordless  Drill.") == line_key("**cordless drill**") == "cordlessdrill"
    assert [line_key(p) for p in parse_completion("**drill**\n2. Drill")] == ["drill", "drill"]


def test_distinct_from_needs_one_text_per_prompt(tiny_llama, tiny_tokenizer):
    with pytest.raises(ValueError, match="one per prompt"):
        sample_groups(tiny_llama, tiny_tokenizer, ["a", "b"], 1, max_new_tokens=2, distinct_from=["a"])
