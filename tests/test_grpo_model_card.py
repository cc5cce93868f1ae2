"""The checkpoint's model card names the base model, data, reward, steps and validation metrics."""
from grpo.model_card import model_card, write_model_card
from leser.config import load_config


def test_card_from_a_resolved_config(tmp_path):
    cfg = load_config(None, ['policy.model="HuggingFaceTB/SmolLM2-360M-Instruct"', 'data.path="home_depot"',
                             "reward.deep_weight=0.5", "train.max_steps=40", 'engine.kind="bm25"'])
    path = write_model_card(tmp_path, cfg.to_dict(), 20, {"valid/reward/total@start": 0.1234, "other": 1.0})
    card = path.read_text()
    assert path.name == "README.md" and card.startswith("---\nlibrary_name: transformers")
    assert "base_model: HuggingFaceTB/SmolLM2-360M-Instruct" in card
    assert "**Data:** home_depot" in card and "deep_weight=0.5" in card and "kind=bm25" in card
    assert "**Steps:** 20 of 40 (full fine-tuning)" in card and "| valid/reward/total@start | 0.1234 |" in card
    assert "other" not in card and "PeftModel" not in card


def test_card_with_a_local_base_and_no_metrics_yet(tmp_path):
    card = model_card({"policy": {"model": str(tmp_path)}, "lora": {"r": 8, "alpha": 16}}, 5, {}, lora=True)
    assert "base_model:" not in card and f"**Base model:** {tmp_path}" in card
    assert "(LoRA r=8, alpha=16)" in card and "No validation metrics" in card and "<this folder>/peft" in card
