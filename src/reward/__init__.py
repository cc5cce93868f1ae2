"""How good were these expansions for the search engine? Rules and search-based reward parts."""
from reward.rules import RULES, RulesConfig, check, usable
from reward.search_reward import RELEVANCE_MODES, RewardConfig, RewardParts, SearchReward, fuse_with_original

__all__ = [
    "RELEVANCE_MODES", "RULES", "RewardConfig", "RewardParts", "RulesConfig", "SearchReward",
    "check", "fuse_with_original", "usable",
]
