"""How good were these expansions for the search engine? Rules and search-based reward parts."""
from reward.rules import RULES, RulesConfig, check, judge, usable
from reward.search_reward import PART_NAMES, RELEVANCE_MODES, RewardConfig, RewardParts, SearchReward

__all__ = [
    "PART_NAMES", "RELEVANCE_MODES", "RULES", "RewardConfig", "RewardParts", "RulesConfig", "SearchReward",
    "check", "judge", "usable",
]
