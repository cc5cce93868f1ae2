"""Best-of-N self-distillation: the pick, the supervised loss, and the whole loop on a tiny model."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from grpo.distill import DistillConfig, DistillExample, best_in_groups, distill
from grpo.sft import finetune, sft_loss
from policy import PromptConfig, build_prompt
from test_grpo_trainer import LetterReward


def test_best_in_groups_picks_the_max_above_threshold():
    rewards = torch.tensor([0.1, 0.5, 0.2, -0.3, -0.1, -0.2, 0.0, 0.0, 0.0])
    assert best_in_groups(rewards, [3, 3, 3], 0.0) == [1, None, None]  # a tie at 0 does not beat the original
    assert best_in_groups(rewards, [3, 3, 3], -1.0) == [1, 4, 6]  # first of tied rows
    # Groups of different sizes, and an empty one, as context candidates make them.
    assert best_in_groups(rewards, [2, 0, 4, 3], -1.0) == [1, None, 2, 6]
    with pytest.raises(ValueError):
        best_in_groups(rewards, [4, 4], 0.0)


def test_sft_loss_is_the_mean_token_nll(tiny_tokenizer, tiny_llama):
    prompt = torch.tensor(tiny_tokenizer("query: drill", add_special_tokens=False)["input_ids"])
    target = torch.tensor([[5, 6, 7, 2]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    full = torch.cat([prompt, target[0, :3]]).unsqueeze(0)
    with torch.no_grad():
        logits = tiny_llama(full).logits[0, len(prompt) - 1:-1]  # predictions of the 3 target tokens
        expected = -torch.log_softmax(logits, -1).gather(1, target[0, :3, None]).mean()
        got = sft_loss(tiny_llama, [prompt], target, mask)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_finetune_lowers_the_loss_and_rejects_empty(tiny_tokenizer, tiny_llama):
    cfg = DistillConfig(epochs=4, batch_size=2, learning_rate=1e-2)
    examples = [DistillExample(f"q{i}", f"query: drill {i}\n", "cordless drill", 0.5) for i in range(4)]
    losses = finetune(tiny_llama, tiny_tokenizer, examples, cfg)
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="nothing to distill"):
        finetune(tiny_llama, tiny_tokenizer, [], cfg)


def test_distill_keeps_only_winning_samples_and_saves_a_loadable_policy(tmp_path, tiny_tokenizer, tiny_llama):
    from transformers import AutoModelForCausalLM

    reward = LetterReward()  # reward = share of the letter "e": > 0 for any expansion that contains one
    scored: list[tuple[str, list[str]]] = []
    score = reward.score
    reward.score = lambda qids, expansions: scored.extend(zip(qids, expansions)) or score(qids, expansions)
    prompt_cfg = PromptConfig(context_k=2, max_prompt_tokens=256, system_prompt="Rewrite the query.")
    cfg = DistillConfig(output_dir=str(tmp_path / "distill"), num_queries=4, num_samples=4, epochs=1,
                        batch_size=2, max_completion_length=8, min_reward=0.0)
    summary = distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, [f"q{i}" for i in range(6)], cfg)
    out = tmp_path / "distill"
    examples = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert summary["queries"] == 4 and summary["kept"] == len(examples)
    assert all(e["reward"] > 0 and "e" in e["target"] for e in examples)
    # The pick by hand: per query, the first of its samples with the highest share of "e" (of the joined lines),
    # kept when that share beats min_reward 0; the means are over every sample and over each query's best.
    share = [" ".join(e).count("e") / max(len(" ".join(e)), 1) for _, e in scored]
    groups: dict[str, list[int]] = {}
    for i, (qid, _) in enumerate(scored):
        groups.setdefault(qid, []).append(i)
    assert len(groups) == 4 and all(len(rows) == 4 for rows in groups.values())
    picks = {qid: max(rows, key=lambda i: (share[i], -i)) for qid, rows in groups.items()}
    want = [(qid, "\n".join(scored[i][1][:prompt_cfg.num_expansions]), share[i]) for qid, i in picks.items()
            if share[i] > 0]
    assert [(e["qid"], e["target"]) for e in examples] == [(q, t) for q, t, _ in want]
    assert [e["reward"] for e in examples] == pytest.approx([r for _, _, r in want], abs=1e-6)
    assert summary["reward_sampled_mean"] == pytest.approx(sum(share) / len(share), abs=1e-6)
    best = [share[i] for i in picks.values()]
    assert summary["reward_best_of_n_mean"] == pytest.approx(sum(best) / len(best), abs=1e-6)
    # some query's samples differ (and not only by a tie for the best): a wrong pick or a mean for the max would show
    assert any(share[picks[q]] > min(share[i] for i in rows) for q, rows in groups.items())
    # The kept prompt is the one the policy saw, so the fine-tuning conditions on the real context.
    for e in examples:
        assert e["prompt"] == build_prompt(tiny_tokenizer, reward.dataset.queries[e["qid"]],
                                           reward.context([e["qid"]], 2)[0], prompt_cfg)
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    for name, p in tiny_llama.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], p)
    with pytest.raises(FileExistsError):
        distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0"], cfg)


def test_distill_from_context_candidates_alone(tmp_path, tiny_tokenizer, tiny_llama):
    reward = LetterReward()
    reward.rules = SimpleNamespace(max_words=8, max_chars=60)
    prompt_cfg = PromptConfig(context_k=2, max_prompt_tokens=256, system_prompt="Rewrite the query.")
    cfg = DistillConfig(output_dir=str(tmp_path / "ctx"), num_queries=3, num_samples=0, context_candidates=True,
                        epochs=1, batch_size=2, max_completion_length=8)
    summary = distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0", "q1", "q2"], cfg)
    examples = [json.loads(line) for line in (tmp_path / "ctx" / "examples.jsonl").read_text().splitlines()]
    # LetterReward's titles are "cordless drill" and "drill bits": only the first adds an "e" to "drill i".
    assert summary["kept"] == summary["kept_from"]["context"] == 3
    assert {e["target"] for e in examples} == {"drill 0 cordless", "drill 1 cordless", "drill 2 cordless"}
    assert summary["reward_sampled_mean"] is None
    # With the titles swapped, only the second adds an "e": the top title alone yields nothing to keep.
    reward.context = lambda qids, k: [["drill bits", "cordless drill"][:k] for _ in qids]
    top_only = DistillConfig(**{**cfg.__dict__, "output_dir": str(tmp_path / "top"), "context_titles": 1})
    with pytest.raises(ValueError, match="nothing to distill"):
        distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0"], top_only)
    both = DistillConfig(**{**cfg.__dict__, "output_dir": str(tmp_path / "both")})
    assert distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0"], both)["kept"] == 1


def test_distill_context_prefixes_offer_the_top_titles_together(tmp_path, tiny_tokenizer, tiny_llama):
    reward = LetterReward()
    reward.rules = SimpleNamespace(max_words=8, max_chars=60)
    reward.context = lambda qids, k: [["drill bits", "cordless drill"][:k] for _ in qids]
    prompt_cfg = PromptConfig(context_k=2, max_prompt_tokens=256, system_prompt="Rewrite the query.")
    cfg = DistillConfig(output_dir=str(tmp_path / "prefix"), num_queries=1, num_samples=0, context_candidates=True,
                        context_prefixes=True, context_titles=2, epochs=1, batch_size=2, max_completion_length=16)
    # Candidates: the top title alone ("drill 0 bits": no "e", reward 0) and both titles together, which
    # carries the second title's "e": only the pair beats the original, and it is kept as two lines.
    distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0"], cfg)
    [example] = [json.loads(line) for line in (tmp_path / "prefix" / "examples.jsonl").read_text().splitlines()]
    assert example["target"] == "drill 0 bits\ndrill 0 cordless"


def test_distill_config_rejects_bad_values():
    with pytest.raises(ValueError, match="context_candidates"):
        DistillConfig(num_samples=0)
    DistillConfig(num_samples=0, context_candidates=True)
    with pytest.raises(ValueError, match="context_titles"):
        DistillConfig(context_titles=-1)
    with pytest.raises(ValueError):
        DistillConfig(learning_rate=0)


def test_targets_drop_whole_lines_to_fit(tiny_tokenizer):
    from grpo.sft import _target_ids

    one = tiny_tokenizer("cordless drill", add_special_tokens=False)["input_ids"]
    both = tiny_tokenizer("cordless drill\nled light bulb", add_special_tokens=False)["input_ids"]
    assert _target_ids(tiny_tokenizer, "cordless drill\nled light bulb", len(both)) == both
    assert _target_ids(tiny_tokenizer, "cordless drill\nled light bulb", len(both) - 1) == one
    assert _target_ids(tiny_tokenizer, "cordless drill", 2) == one[:2]


def test_distill_label_candidates_write_the_relevant_items_words(tmp_path, tiny_tokenizer, tiny_llama):
    from grpo.distill import relevant_titles
    from retrieval import Dataset

    reward = LetterReward()
    reward.rules = SimpleNamespace(max_words=8, max_chars=60)
    titles = ["Cordless Drill", "Hammer Drill Set", "Drill Bits", "Saw Blade", "Tape"]
    # q0's judged items: rows 1 (relevant) and 3 (below the relevant gain); q1 has no judgments.
    reward.dataset = Dataset("toy", [f"p{i}" for i in range(len(titles))], titles,
                             {"q0": "drill 0", "q1": "drill 1"}, {"q0": {1: 2.0, 3: 0.5}, "q1": {}}, 1.0)
    assert relevant_titles(reward.dataset, "q0") == ["Hammer Drill Set"]
    prompt_cfg = PromptConfig(context_k=2, max_prompt_tokens=256, system_prompt="Rewrite the query.")
    cfg = DistillConfig(output_dir=str(tmp_path / "labels"), num_queries=2, num_samples=0, label_candidates=True,
                        epochs=1, batch_size=2, max_completion_length=16)
    summary = distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0", "q1"], cfg)
    examples = [json.loads(line) for line in (tmp_path / "labels" / "examples.jsonl").read_text().splitlines()]
    # Only q0 has relevant items; its words "hammer" and "set" carry the "e"s, two per expansion first.
    assert summary["kept"] == summary["kept_from"]["labels"] == 1
    assert examples[0]["qid"] == "q0" and examples[0]["target"] in {"drill 0 hammer set", "drill 0 hammer\ndrill 0 set"}
    # With label_source "shown", only relevant items among the prompt's titles count: LetterReward shows
    # "cordless drill" and "drill bits", neither of them q0's relevant "Hammer Drill Set", so nothing is written.
    shown_cfg = DistillConfig(output_dir=str(tmp_path / "shown"), num_queries=2, num_samples=0,
                              label_candidates=True, label_source="shown", epochs=1, batch_size=2,
                              max_completion_length=16)
    with pytest.raises(ValueError, match="nothing to distill"):
        distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0", "q1"], shown_cfg)
    reward.context = lambda qids, k: [["Hammer Drill Set", "Tape"][:k] for _ in qids]
    shown_cfg.output_dir = str(tmp_path / "shown2")
    assert distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0", "q1"], shown_cfg)["kept"] == 1
    with pytest.raises(ValueError, match="label_source"):
        DistillConfig(label_source="some")
    with pytest.raises(ValueError, match="label_candidates"):
        DistillConfig(num_samples=0)
    with pytest.raises(ValueError, match="precision"):
        DistillConfig(precision="fp16")


def test_distill_spelling_candidates_write_the_corrected_query(tmp_path, tiny_tokenizer, tiny_llama):
    from retrieval import Dataset

    class HammerReward(LetterReward):
        """1 when an expansion holds the word "hammer" (the catalogue's spelling), else 0."""

        def score(self, qids, expansions):
            parts = super().score(qids, expansions)
            parts.total = torch.tensor([float(any("hammer" in e.split() for e in es)) for es in expansions])
            return parts

    reward = HammerReward()
    reward.rules = SimpleNamespace(max_words=8, max_chars=60)
    reward.plan = SimpleNamespace(expansion_engine=SimpleNamespace(stemmer=None))
    titles = ["Cordless Drill", "Hammer Drill", "Drill Bits"]
    reward.dataset = Dataset("toy", ["p0", "p1", "p2"], titles, {"q0": "hamer 0", "q1": "drill 1"},
                             {"q0": {}, "q1": {}}, 1.0)
    prompt_cfg = PromptConfig(context_k=2, max_prompt_tokens=256, system_prompt="Rewrite the query.")
    cfg = DistillConfig(output_dir=str(tmp_path / "spell"), num_queries=2, num_samples=0, context_candidates=True,
                        epochs=1, batch_size=2, max_completion_length=16)
    # Without spelling candidates, nothing written from "hamer 0" and the shown titles holds "hammer".
    with pytest.raises(ValueError, match="nothing to distill"):
        distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0", "q1"], cfg)
    cfg = DistillConfig(**{**cfg.__dict__, "output_dir": str(tmp_path / "spell2"), "spelling_candidates": True,
                           "spelling_repeats": 3})
    summary = distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0", "q1"], cfg)
    [example] = [json.loads(line) for line in (tmp_path / "spell2" / "examples.jsonl").read_text().splitlines()]
    # q0's typo is fixed (the corrected query is the first candidate written on it); q1 has none to fix.
    assert summary["kept_from"]["spelling"] == summary["kept"] == 1
    assert example["qid"] == "q0" and example["target"] == "hammer 0" and example["origin"] == "spelling"
    assert summary["fitted"] == 3  # the spelling pick, fine-tuned on three times
    # With [engine] correct_spelling the reward shows the query fixed, and the written candidates start from it.
    reward.shown_query = lambda query, titles: query.replace("hamer", "hammer")
    cfg = DistillConfig(**{**cfg.__dict__, "output_dir": str(tmp_path / "shown"), "spelling_candidates": False,
                           "spelling_repeats": 1})
    summary = distill(tiny_llama, tiny_tokenizer, reward, prompt_cfg, ["q0", "q1"], cfg)
    [example] = [json.loads(line) for line in (tmp_path / "shown" / "examples.jsonl").read_text().splitlines()]
    assert summary["kept_from"]["context"] == summary["kept"] == 1
    assert example["qid"] == "q0" and example["target"].startswith("hammer 0 ")
    assert "hammer 0" in example["prompt"] and "hamer" not in example["prompt"]
    with pytest.raises(ValueError, match="spelling_repeats"):
        DistillConfig(spelling_repeats=0)
    DistillConfig(num_samples=0, spelling_candidates=True)  # a written pool of its own
