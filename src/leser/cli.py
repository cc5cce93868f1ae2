"""``leser train | distill | eval | judge | expand | precompute | merge``: a thin layer that reads the config and calls the packages."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from grpo.guards import NonFiniteStepError
from leser.config import ConfigError, LeserConfig, ServeConfig, checkpoint_overrides, load_config

SERVING_COMMANDS = ("expand", "precompute", "serve")
"""Commands that answer with a trained policy: they take its stored settings."""


def _config(args) -> LeserConfig:
    """The config file, then (for a ``--model`` that carries them) the prompt and rules it was trained with, then
    ``--set``: a checkpoint is served as it was trained unless told otherwise."""
    model = getattr(args, "model", None)
    stored = checkpoint_overrides(model) if getattr(args, "command", "") in SERVING_COMMANDS else []
    if stored:
        print(f"using the [prompt] and [rules] {model} was trained with (leser_settings.json); --set overrides them",
              file=sys.stderr)
    overrides = stored + list(args.set or [])
    if model:
        overrides.append(f'policy.model="{model}"')
    return load_config(args.config, overrides)


def cmd_train(args) -> int:
    """One process, or one of ``torchrun``'s: rank 0 converts the model, embeds the catalog and distills the warm
    start first (the others then read what it wrote) and writes every file."""
    from grpo.checkpoint import check_output_dir
    from grpo.distributed import from_environment, shutdown
    from grpo.trainer import GRPOTrainer
    from leser.runtime import build_reward
    from leser.queries import trainable_queries, training_queries
    from policy import load_policy
    from policy.loading import resolve_device

    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in output_dir and --overwrite replaces it: give one")
    cfg = _config(args)
    # The cheap checks first: a reused folder or a wrong model path fails in seconds, before the catalog is embedded.
    check_output_dir(cfg.train.output_dir, args.resume, args.overwrite)
    dist = from_environment(resolve_device(None))  # nccl where load_policy puts the model on a GPU, else gloo
    say = print if dist.is_main else (lambda *a, **k: None)
    try:
        with dist.main_first():
            model, tokenizer = load_policy(cfg.policy.model, dtype=cfg.policy.dtype)
            reward = build_reward(cfg)
        say(reward.dataset.summary())
        say(f"retrieval plan: {reward.plan}")
        train_qids = training_queries(cfg, reward)
        if cfg.distill.before_train:
            with dist.main_first():
                cfg.policy.model = _warm_start(cfg, reward, train_qids, model, tokenizer)
            model, tokenizer = load_policy(cfg.policy.model, dtype=cfg.policy.dtype)  # as a resumed run loads it
        valid_qids = trainable_queries(cfg, reward.dataset, "valid")
        trainer = GRPOTrainer(cfg.train, model, tokenizer, reward, cfg.prompt, train_qids, valid_qids,
                              lora_cfg=cfg.lora, run_config=cfg.to_dict(), dist=dist)
        result = trainer.train(resume=args.resume, overwrite=args.overwrite)
    finally:
        shutdown()
    if "stopped_by" in result:
        say(f"leser train: stopped by {result['stopped_by']} after step {result['step']}, checkpoint "
            f"{result['checkpoint']}; continue with: {resume_command(args)}")
        return 0
    say(json.dumps(result, indent=1))
    return 0


def _warm_start(cfg: LeserConfig, reward, train_qids: list[str], model, tokenizer) -> str:
    """The recipe's first stage: the distilled policy's folder, distilled from ``model`` now unless it is there
    already."""
    from grpo.distill import distill

    out = Path(cfg.distill.output_dir)
    if (out / "distill.json").exists():
        print(f"warm start: reusing {out} (distill.json present)")
        return str(out)
    distill(model, tokenizer, reward, cfg.prompt, train_qids, cfg.distill, run_config=cfg.to_dict())
    print(f"warm start: distilled into {out}")
    return str(out)


def resume_command(args) -> str:
    """The command line that continues an interrupted ``leser train``: the same config and overrides."""
    parts = ["leser train"] + ([f"--config {args.config}"] if args.config else [])
    parts += [f"--set '{item}'" for item in args.set or []]
    return " ".join(parts + ["--resume"])


def cmd_distill(args) -> int:
    from grpo.distill import distill
    from leser.runtime import build_reward
    from leser.queries import training_queries
    from policy import load_policy

    cfg = _config(args)
    model, tokenizer = load_policy(cfg.policy.model, dtype=cfg.policy.dtype)  # before the catalog is embedded
    reward = build_reward(cfg)
    train_qids = training_queries(cfg, reward)
    summary = distill(model, tokenizer, reward, cfg.prompt, train_qids, cfg.distill, run_config=cfg.to_dict())
    print(json.dumps({k: v for k, v in summary.items() if k not in ("config", "run_config")}, indent=1))
    print(f"wrote {cfg.distill.output_dir}; train from it with --set policy.model=\"{cfg.distill.output_dir}\"")
    return 0


def cmd_eval(args) -> int:
    from leser.evaluate import run_evaluation

    cfg = _config(args)
    if args.checkpoint:
        cfg.eval.checkpoints = list(args.checkpoint)
    if args.max_queries is not None:
        cfg.eval.max_queries = args.max_queries
    if args.output_dir:
        cfg.eval.output_dir = args.output_dir
    run_evaluation(cfg)
    return 0


def _expander(cfg: LeserConfig):
    from leser.runtime import build_reward
    from policy import load_policy

    # The model first: a wrong --model fails in a second, before the catalog is embedded.
    model, tokenizer = load_policy(cfg.policy.model, dtype=cfg.policy.dtype)
    return build_reward(cfg), model, tokenizer


def _expand_batch(queries: list[str], reward, model, tokenizer, cfg: LeserConfig):
    """Context titles and judged expansions (:func:`reward.judge`: kept, dropped with their rules) for free-text
    queries, greedy unless [eval] temperature says otherwise."""
    from policy import expand_queries
    from retrieval.plan import top_titles
    from reward import judge

    texts = reward.dataset.product_texts
    contexts = [top_titles(texts, ranking, cfg.prompt.context_k) for ranking in reward.plan.rank(queries)]
    shown = [reward.shown_query(q, c) for q, c in zip(queries, contexts)]
    expansions = expand_queries(model, tokenizer, shown, contexts, cfg.prompt,
                                max_new_tokens=cfg.eval.max_new_tokens, temperature=cfg.eval.temperature,
                                distinct_lines=cfg.eval.distinct_lines)
    return contexts, [judge(q, e, cfg.rules) for q, e in zip(queries, expansions)]


def cmd_expand(args) -> int:
    query = " ".join(args.query).strip()
    if not query:
        raise ConfigError("empty query: give the text to expand, e.g. leser expand \"couch small apartment\"")
    cfg = _config(args)
    if args.n is not None:
        cfg.prompt.num_expansions = args.n
    reward, model, tokenizer = _expander(cfg)
    [context], [judged] = _expand_batch([query], reward, model, tokenizer, cfg)
    print(f"query: {query}")
    if (shown := reward.shown_query(query, context)) != query:  # [engine] correct_spelling fixed a typo
        print(f"shown to the policy as: {shown}")
    print(f"context ({len(context)} results):")
    for i, title in enumerate(context, 1):
        print(f"  {i}. {title}")
    print("expansions:")
    for e in judged["expansions"]:
        print(f"  - {e}")
    if args.show_dropped:
        print("dropped by the platform rules:" if judged["dropped"] else "dropped by the platform rules: none")
        for d in judged["dropped"]:
            print(f"  - {d['expansion']}  ({', '.join(d['violations'])})")
    return 0


def _read_queries(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read queries from {path}: {err}") from None
    queries = [line.strip() for line in lines if line.strip()]
    if not queries:
        raise ConfigError(f"{path}: no queries (one query per line)")
    return list(dict.fromkeys(queries))


def cmd_precompute(args) -> int:
    from tqdm.auto import tqdm

    queries = _read_queries(Path(args.queries))
    cfg = _config(args)
    reward, model, tokenizer = _expander(cfg)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f, tqdm(total=len(queries), desc="expand") as bar:
        for i in range(0, len(queries), args.batch_size):
            batch = queries[i : i + args.batch_size]
            _, judged = _expand_batch(batch, reward, model, tokenizer, cfg)
            for j in judged:
                line = {"query": j["query"], "expansions": j["expansions"]}
                f.write(json.dumps({**line, "dropped": j["dropped"]} if args.show_dropped else line,
                                   ensure_ascii=False) + "\n")
            bar.update(len(batch))
    tmp.replace(out)
    print(f"wrote {len(queries)} queries to {out}")
    return 0


def cmd_merge(args) -> int:
    """A LoRA adapter file (``checkpoint-N/adapter.safetensors``) merged into its base: a plain HF folder."""
    from policy import load_adapter, load_policy

    cfg = _config(args)
    adapter, out = Path(args.adapter), Path(args.output)
    if not adapter.is_file():
        raise FileNotFoundError(f"adapter file not found: {adapter}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose another --output")
    model, tokenizer = load_policy(args.model or cfg.policy.model, dtype=cfg.policy.dtype, device="cpu")
    load_adapter(model, adapter)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"wrote {out}")
    return 0


SERVE_LIMITS = {
    "max_body_bytes": (int, "largest request body in bytes (413 past it)"),
    "max_queries_per_request": (int, "most queries in one request (422 past it)"),
    "max_query_chars": (int, "longest query in characters (422 past it)"),
    "max_queued_queries": (int, "most queries waiting for the model, over all requests (503 past it)"),
    "request_timeout_s": (float, "seconds one request may take (504 past it)"),
}
"""``leser serve``'s limit flags: ``--max-body-bytes`` sets ``[serve] max_body_bytes`` and so on."""


def cmd_serve(args) -> int:
    """Blocks until interrupted: ``POST /expand`` on ``--host``/``--port`` (see leser.serve). The limit flags
    override ``[serve]`` (after ``--set``), and are checked as its keys are."""
    try:
        from leser.serve import serve
    except ImportError as err:
        raise ConfigError(f"leser serve needs the serve extra: pip install 'leser[serve]' ({err})") from None
    limits = [f"serve.{key}={value}" for key in SERVE_LIMITS if (value := getattr(args, key)) is not None]
    args.set = list(args.set or []) + limits
    serve(_config(args), host=args.host, port=args.port, precomputed=args.precomputed, micro_batch=args.micro_batch)
    return 0


def cmd_judge(args) -> int:
    """``judge train``: fine-tune the relevance judge on the training split, then report it on valid;
    ``judge eval``: only the report, for the judge in ``[judge] model``."""
    from leser import judge

    cfg = _config(args)
    judge.train(cfg) if args.action == "train" else judge.evaluate(cfg)
    return 0


def cmd_show_config(args) -> int:
    from leser.config import to_toml

    print(to_toml(_config(args)), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leser", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--config", help="TOML config (see experiments/configs/)")
        p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override a config value, TOML syntax: --set train.max_steps=5")
        return p

    p = common(sub.add_parser("train", help="GRPO-train the policy"))
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an output_dir that holds an earlier run, deleting its checkpoints")
    p.set_defaults(func=cmd_train)

    p = common(sub.add_parser("distill", help="best-of-N self-distillation: a supervised warm start for train"))
    p.set_defaults(func=cmd_distill)

    p = common(sub.add_parser("eval", help="compare the original query, zero-shot and trained expansions"))
    p.add_argument("--checkpoint", action="append", help="a trained policy folder, optionally label=path")
    p.add_argument("--max-queries", type=int)
    p.add_argument("--output-dir")
    p.set_defaults(func=cmd_eval)

    p = common(sub.add_parser("expand", help="expand one query and show the context used"))
    p.add_argument("query", nargs="+")
    p.add_argument("--model", help="policy folder or HF id (default: the config's)")
    p.add_argument("-n", type=int, help="number of expansions")
    p.add_argument("--show-dropped", action="store_true", help="also print what the platform rules dropped, and why")
    p.set_defaults(func=cmd_expand)

    p = common(sub.add_parser("precompute", help="expand a file of queries (one per line) to JSONL"))
    p.add_argument("--queries", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", help="policy folder or HF id")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--show-dropped", action="store_true", help="also write what the platform rules dropped, and why")
    p.set_defaults(func=cmd_precompute)

    p = common(sub.add_parser("merge", help="merge a LoRA adapter file into its base model, as an HF folder"))
    p.add_argument("--adapter", required=True, help="adapter.safetensors written next to a LoRA checkpoint")
    p.add_argument("--output", required=True, help="new folder for the merged model")
    p.add_argument("--model", help="the base the adapter was trained on (default: the config's policy)")
    p.set_defaults(func=cmd_merge)

    p = common(sub.add_parser("serve", help="answer POST /expand {\"queries\": [...]} over HTTP (serve extra)"))
    p.add_argument("--model", help="policy folder or HF id (default: the config's)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--precomputed", help="JSONL from leser precompute: head queries answered without generating")
    p.add_argument("--micro-batch", type=int, default=8, help="most queries per generate call")
    defaults = ServeConfig()
    for key, (kind, text) in SERVE_LIMITS.items():
        p.add_argument("--" + key.replace("_", "-").removesuffix("-s"), dest=key, type=kind, metavar="N",
                       help=f"{text}; default: [serve] {key}, {getattr(defaults, key):g}")
    p.set_defaults(func=cmd_serve)

    p = common(sub.add_parser("judge", help="train the relevance judge (training split), or report it (valid)"))
    p.add_argument("action", choices=("train", "eval"))
    p.set_defaults(func=cmd_judge)

    p = common(sub.add_parser("config", help="print the resolved config as TOML (--config reads it back)"))
    p.set_defaults(func=cmd_show_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG/INFO
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, NonFiniteStepError) as err:
        print(f"leser {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
