"""Which queries a run trains on and which it scores: the one place a split is turned into query ids, so a valid or
test query can reach neither a training step nor the wrong eval."""
from __future__ import annotations

from leser.config import LeserConfig
from retrieval import Dataset
from reward import SearchReward


def trainable_queries(cfg: LeserConfig, dataset: Dataset, split: str) -> list[str]:
    """Query ids of ``split`` that can teach something: with labels, those with a relevant item."""
    qids = dataset.split(split)
    if cfg.reward.relevance in ("labels", "mixed"):
        qids = [q for q in qids if dataset.relevant(q)]
    return sorted(qids)


def training_queries(cfg: LeserConfig, reward: SearchReward) -> list[str]:
    """The training split's queries, with ``reward.headroom_only`` those the expansions can still improve."""
    qids = trainable_queries(cfg, reward.dataset, "train")
    if cfg.reward.headroom_only:
        kept = reward.with_headroom(qids)
        print(f"headroom_only: {len(kept)} of {len(qids)} training queries leave room "
              f"under the {reward.plan.kind} plan")
        qids = kept
    return qids[: cfg.data.max_train_queries]
