"""Run the Lumos agent (planner -> grounder -> executor) over a task's test set and report the paper's metric.

    python run_agent.py --task gsm8k --limit 20                          # the shipped models, a quick look
    python run_agent.py --task gsm8k --backend gold --limit 200          # replay gold annotations end to end
    python run_agent.py --task gsm8k --planner runs/plan --grounder runs/ground --limit 20   # your train.py runs
    python run_agent.py --task gsm8k --planner ai2lumos/lumos_maths_plan_iterative \\
                        --grounder ai2lumos/lumos_maths_ground_iterative --device cuda  # the released 7B models
    python run_agent.py --task gsm8k --planner http://localhost:8000/v1 --grounder http://localhost:8001/v1
    python run_agent.py --task gsm8k --question "Tom has 3 apples and buys 4 more. How many apples?"
    python -m lumos.report outputs/gsm8k-iterative-lumos-smollm2-plan-lora-lumos-smollm2-ground-lora.jsonl

Every finished example is appended to a JSONL trace (--out); rerunning with the same --out resumes.
The summary (metric, every wrong answer's cause) is printed and saved next to the trace, with an HTML
report of every example (plan, actions, results, answer vs gold) that any browser opens offline.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent
# Lumos-I: LoRA adapters on the pretrained SmolLM2-135M (its base is fetched into $LUMOS_CACHE on first use)
DEFAULT_CKPT = {"planner": ROOT / "checkpoints/lumos-smollm2-plan-lora",
                "grounder": ROOT / "checkpoints/lumos-smollm2-ground-lora"}
# Lumos-O's planner answers the same first prompt with the whole plan, so it is a model of its own; no
# SmolLM2 Lumos-O pair is trained yet, so Lumos-O keeps the from-scratch demo models
DEFAULT_CKPT_ONETIME = {"planner": ROOT / "checkpoints/lumos-demo-plan-onetime",
                        "grounder": ROOT / "checkpoints/lumos-demo-ground"}
SHIPPED_FAMILIES = ("maths",)  # task families the shipped models were trained for
GOLD = {"gsm8k": ROOT / "data/gold/gsm8k_test.jsonl"}
WEB_MAX_ROUNDS = 64  # Lumos-I planner calls per web task: Mind2Web tasks run to ~30 steps

SMALL_MODEL = 50_000_000  # parameters: below this, one CPU thread decodes as fast as several (see set_threads)
BOS_HELP = ("put BOS (<s>) before every prompt (default: what the checkpoint's tokenizer says: on for Llama-2 "
            "(tokenizer.model), off for SmolLM2). The paper's trainer tokenized each training "
            "conversation with BOS first, while its inference code tokenized prompts without it; we match "
            "training, since that is the distribution the weights learned. --no-bos reproduces the paper's "
            "inference exactly. (Local backend only: an HTTP server tokenizes for itself.)")


def parse_args(argv=None):
    from lumos.agent.budget import BUDGETS
    from lumos.agent.tasks import TASKS
    from lumos.agent.tasks.miniwob import TASKS as MINIWOB_TASKS
    from lumos.cli import HelpFormatter, nonnegative_float, positive_int
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--task", choices=TASKS, default="gsm8k", help="evaluation set")
    p.add_argument("--formulation", choices=("iterative", "onetime"), default="iterative",
                   help="Lumos-I (plan one subgoal, ground, execute, feed the result back) or Lumos-O (plan all at once)")
    p.add_argument("--backend", choices=("local", "openai", "gold"), default="local",
                   help="backend of both modules when --planner/--grounder are not given")
    for m in ("planner", "grounder"):
        p.add_argument(f"--{m}", metavar="SPEC", help=f"the {m}: a checkpoint directory (HF or Meta layout), "
                       "'smollm2' (the pretrained base, fetched once), a hub id "
                       f"(ai2lumos/lumos_maths_{m[:4] if m == 'planner' else 'ground'}_iterative), 'gold', or an "
                       f"OpenAI-compatible endpoint URL (http://host:8000/v1). Default: {rel(DEFAULT_CKPT[m])}"
                       + (f" ({rel(DEFAULT_CKPT_ONETIME[m])} with --formulation onetime)" if m == "planner" else ""))
        p.add_argument(f"--{m}-model", metavar="NAME", help=f"model name to request from the {m}'s endpoint "
                       "(default: $OPENAI_MODEL, else the server's first /models entry)")
    p.add_argument("--url", default=os.environ.get("OPENAI_BASE_URL"),
                   help="endpoint for --backend openai when --planner/--grounder give none (default: $OPENAI_BASE_URL)")
    p.add_argument("--api-key", default=None, help="bearer key for the endpoint (default: $OPENAI_API_KEY)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N examples of the test set (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="examples in flight; each planner/grounder step decodes them as one batch")
    p.add_argument("--out", default=None, help="JSONL trace (default outputs/TASK-FORMULATION-PLANNER-GROUNDER.jsonl); "
                   "an existing file is resumed, its finished ids skipped; the summary goes to OUT minus .jsonl + .summary.json")
    p.add_argument("--question", default=None, help="answer one question of your own and print plan, actions and answer")
    measured = "; ".join(f"{f} {o}: planner {b['planner']}, grounder {b['grounder']}, example {b['example']}"
                         for (f, o), b in BUDGETS.items())
    p.add_argument("--max-new-tokens", type=positive_int, default=None,
                   help="new tokens per planner/grounder turn; each turn also stops at its first newline or when "
                   "it loops. Default: each module's budget measured from the gold annotations (lumos.agent.budget: "
                   f"{measured}); the paper's 512 for families without annotations here")
    p.add_argument("--max-example-tokens", type=positive_int, default=None,
                   help="generated tokens per example (planner + grounder, all rounds) before it fails as "
                   "token_budget. Default: the measured budget above; none for other families")
    p.add_argument("--bos", action=argparse.BooleanOptionalAction, default=None, help=BOS_HELP)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help=f"CPU threads of local models (default: 1 when every local model has under "
                   f"{SMALL_MODEL // 10**6}M parameters, as the demo models: their matrices are too small to share "
                   "out, and on a busy CPU the threads wait on each other; else torch's default, one per core)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16", "int8"), default=None,
                   help="weights dtype of local models (default: bfloat16 on cuda, float32 on cpu). int8: weight-only "
                   "int8 with per-channel scales (lumos/model/quantize.py; README 'Decoding' measures its cost)")
    p.add_argument("--kv-reuse-gb", type=nonnegative_float, default=4.0,
                   help="keys/values a local model keeps across turns and examples, so each Lumos-I turn prefills only "
                   "its new tokens (lumos/model/prefix_cache.py; the text is the same). 0 turns reuse off")
    p.add_argument("--corpus", default=None, help="complex QA: answer KnowledgeQuery from a local directory of *.txt / "
                   "*.jsonl {title, text} pages instead of Wikipedia over HTTP")
    p.add_argument("--cache-dir", default=None,
                   help="where hub ids are downloaded (default: the Hugging Face cache, $HF_HOME/hub; see lumos/hub.py)")
    p.add_argument("--html", action=argparse.BooleanOptionalAction, default=True,
                   help="also write the trace as one self-contained HTML report, OUT minus .jsonl + .html")
    web = p.add_argument_group("web agents (--task mind2web | miniwob)")
    web.add_argument("--mind2web-data", metavar="DIR", default=str(ROOT / "data/mind2web"),
                     help="the released Mind2Web JSON: DIR/{train,test_task,test_website,test_domain}/*.json "
                     "(default: the hand-written fixture data/mind2web)")
    web.add_argument("--mind2web-split", choices=("test_task", "test_website", "test_domain", "train"), default="test_task",
                     help="which released split (default %(default)s; Lumos's own script read test_domain)")
    web.add_argument("--mind2web-scores", metavar="FILE", default=None,
                     help="MindAct's candidate ranks (scores_all_data.pkl or .json): offer only each step's top 50")
    web.add_argument("--ranker", default="bm25", metavar="bm25|oracle|DIR",
                     help="which element a web action's QUERY picks: BM25 over the candidates' text (default); "
                     "'oracle': the gold element (offline Mind2Web only), to check everything but ranking; or a "
                     "cross-encoder checkpoint directory trained by train.py on `python -m lumos.agent.ranker` pairs")
    web.add_argument("--miniwob-tasks", default=",".join(MINIWOB_TASKS), metavar="T1,T2",
                     help="comma-separated MiniWoB++ task pages (default: %(default)s)")
    web.add_argument("--miniwob-episodes", type=positive_int, default=10, metavar="N",
                     help="episodes (seeds 0..N-1) per MiniWoB++ task (default %(default)s)")
    web.add_argument("--miniwob-max-ms", type=positive_int, default=None, metavar="MS",
                     help="override a MiniWoB++ episode's time limit (the pages' own: 10000 ms)")
    web.add_argument("--browsers", type=positive_int, default=2, metavar="N",
                     help="MiniWoB++: headless Chromium windows, i.e. episodes in flight at once (default %(default)s)")
    web.add_argument("--screenshots", metavar="DIR", default=None,
                     help="MiniWoB++: a screenshot per step into DIR/<episode id>/ (default: next to --out, OUT minus .jsonl + _screenshots)")
    sql = p.add_argument_group("InterCode-SQL (--task intercode_sql, intercode_sql_test)")
    sql.add_argument("--db", default="sqlite", metavar="URL",
                     help="the databases: 'sqlite' (default: embedded, built once from data/intercode-sql into "
                     "~/.cache/lumos/intercode_sql) or a MySQL/MariaDB server, mysql://user:pass@host:port "
                     "(`python -m lumos.envs.mariadb start` starts one and prints its URL)")
    sql.add_argument("--sql-time-limit", type=float, default=5.0, metavar="S",
                     help="seconds one SQL statement may run (default 5)")
    shop = p.add_argument_group("WebShop (--task webshop)")
    shop.add_argument("--webshop-data", metavar="DIR", default=None,
                      help="WebShop's data files (items_shuffle.json, items_ins_v2.json, items_human_ins.json): the "
                      "goals, their gold trajectories, and the embedded shop's catalogue (default: data/webshop, "
                      "generated on first use by `python -m lumos.envs.webshop.generate`)")
    shop.add_argument("--webshop-url", metavar="URL", default=None,
                      help="act on a running WebShop server instead of the embedded shop, e.g. http://127.0.0.1:3000 "
                      "(WebShop's own, or `python -m lumos.envs.webshop.server`); goal i is its session fixed_i")
    args = p.parse_args(argv)
    unknown = set(args.miniwob_tasks.split(",")) - set(MINIWOB_TASKS)
    if args.task == "miniwob" and unknown:
        p.error(f"--miniwob-tasks: no oracle for {', '.join(sorted(unknown))} (known: {', '.join(MINIWOB_TASKS)})")
    if args.ranker not in ("bm25", "oracle") and not Path(args.ranker).is_dir():
        p.error(f"--ranker {args.ranker}: neither bm25, oracle, nor a checkpoint directory")
    if args.ranker == "oracle" and args.task != "mind2web":
        p.error("--ranker oracle needs the recorded gold elements of --task mind2web")
    if not (args.db == "sqlite" or args.db.startswith(("sqlite://", "mysql://", "mariadb://"))):
        p.error(f"--db must be 'sqlite', sqlite:///DIR or mysql://user:pass@host:port, got {args.db!r}")
    if not 0 < args.sql_time_limit <= 600:
        p.error("--sql-time-limit must be in (0, 600] seconds")
    return args


def rel(p: Path) -> str:
    return os.path.relpath(p, ROOT) if str(p).startswith(str(ROOT)) else str(p)


def fail(msg: str, code: int = 2):
    print(f"run_agent.py: error: {msg}", file=sys.stderr)
    sys.exit(code)


def tag(spec: str) -> str:
    """A short file-name-safe label of a planner/grounder spec."""
    s = spec.rstrip("/").split("://")[-1]
    s = s.replace(":", "_") if "://" in spec else s.split("/")[-1]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)[:40] or "x"


def released(family: str, module: str, formulation: str) -> str:
    """The hub id of the paper's released model for a family (web and SQL tasks: the unified model)."""
    kind = "plan" if module == "planner" else "ground"
    if family in ("maths", "complex_qa"):
        return f"ai2lumos/lumos_{family}_{kind}_{formulation}"
    return f"ai2lumos/lumos_unified_{kind}_iterative"


def make_backends(args, examples=None):
    """-> (planner, grounder) backends, from --planner/--grounder or --backend's default. `examples`: the
    loaded web-task examples, whose gold annotations (example.meta["gold"]) the gold backend replays."""
    from lumos.agent.backends import GoldBackend, LocalBackend, OpenAIBackend, load_gold
    from lumos.agent.tasks import TASKS
    family = TASKS[args.task].family
    specs, local_cache, gold_rows = {}, {}, None
    for m in ("planner", "grounder"):
        spec = getattr(args, m)
        if spec is None:
            if args.backend == "gold":
                spec = "gold"
            elif args.backend == "openai":
                if not args.url:
                    fail(f"--backend openai needs an endpoint: --url http://host:8000/v1 (or $OPENAI_BASE_URL), or --{m} URL")
                spec = args.url
            else:
                if family not in SHIPPED_FAMILIES:  # the shipped models would answer in maths-speak
                    fail(f"no {m} is shipped for --task {args.task} ({family}; the models in checkpoints/ "
                         f"are maths-only): pass --planner and --grounder, e.g. "
                         f"--planner {released(family, 'planner', args.formulation)} "
                         f"--grounder {released(family, 'grounder', args.formulation)}, a train.py output "
                         "directory, or an http:// endpoint")
                default = (DEFAULT_CKPT_ONETIME if args.formulation == "onetime" else DEFAULT_CKPT)[m]
                spec = str(default)
                if not Path(spec).is_dir():
                    fail(f"no default {m} checkpoint at {rel(default)} yet: try --backend gold "
                         f"(replays gold annotations), or pass --planner/--grounder a checkpoint directory from train.py, "
                         f"a hub id such as ai2lumos/lumos_maths_plan_iterative, or an http:// endpoint")
        specs[m] = spec
    backends = {}
    for m, spec in specs.items():
        if spec == "gold" and args.task == "miniwob":   # the scripted oracle writes MiniWoB's annotations
            from lumos.agent.tasks.miniwob import OracleBackend
            backends[m] = OracleBackend(m, args.formulation)
        elif spec == "gold" and examples and "gold" in examples[0].meta:
            gold_rows = {e.id: e.meta["gold"] for e in examples}
            backends[m] = GoldBackend(gold_rows, m, args.formulation)
        elif spec == "gold":
            if args.task not in GOLD:
                fail(f"gold annotations exist only for {', '.join(GOLD)}; --task {args.task} needs a model planner/grounder")
            if args.question:
                fail("the gold backend replays annotations of the test set; it cannot answer --question")
            if gold_rows is None:
                gold_rows = load_gold(ensure_gold(args.task))
            backends[m] = GoldBackend(gold_rows, m, args.formulation)
        elif spec.startswith(("http://", "https://")):
            backends[m] = OpenAIBackend(spec, model=getattr(args, f"{m}_model"), api_key=args.api_key,
                                        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
        else:
            if spec not in local_cache:  # planner and grounder from one checkpoint: load it once
                local_cache[spec] = LocalBackend(spec, device=args.device, dtype=args.dtype, bos=args.bos,
                                                 batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                                                 cache_dir=args.cache_dir, kv_reuse_bytes=int(args.kv_reuse_gb * 2**30))
            backends[m] = local_cache[spec]
    return backends["planner"], backends["grounder"], specs


def load_examples(args):
    """The web tasks' examples: Mind2Web's carry their own gold annotations (--mind2web-data/--mind2web-split);
    MiniWoB++'s are task pages and seeds."""
    from lumos.agent.tasks.mind2web import load_mind2web
    from lumos.agent.tasks.miniwob import load_miniwob
    if args.task == "miniwob":
        return load_miniwob(args.miniwob_tasks.split(","), args.miniwob_episodes, limit=args.limit)
    if args.task == "webshop":
        from lumos.agent.tasks.webshop import load_webshop
        try:
            return load_webshop(args.webshop_data, args.limit)
        except (OSError, ValueError, KeyError) as e:
            fail(f"cannot load WebShop data from {args.webshop_data}: {type(e).__name__}: {e}")
    try:
        return load_mind2web(args.mind2web_data, args.mind2web_split, args.limit, args.mind2web_scores)
    except (OSError, ValueError, KeyError) as e:
        fail(f"cannot load Mind2Web from {args.mind2web_data}: {type(e).__name__}: {e}")


def set_threads(args, *backends):
    """--threads, else 1 thread when every local model is small and on the CPU. Measured with the demo
    models, `--limit 20`: 84 s with torch's 2 threads vs 15 s with 1 at load average 8 (32 vs 15.5 s at 7);
    idle, the CPU time of both is about the same (6.4 vs 5.9 s)."""
    import torch
    from lumos.agent.backends import LocalBackend
    if args.threads:
        torch.set_num_threads(args.threads)
        return
    models = [b.model for b in backends if isinstance(b, LocalBackend)]
    if args.device == "cpu" and models and all(sum(p.numel() for p in m.parameters()) < SMALL_MODEL for m in models):
        torch.set_num_threads(1)


def ensure_gold(task: str) -> Path:
    """data/gold/<task>_test.jsonl, made by data/prepare.py's converter (a few seconds) when missing."""
    path = GOLD[task]
    if not path.exists():
        print(f"{rel(path)} is missing: converting GSM8K as `python data/prepare.py` does ...", file=sys.stderr)
        from lumos.annotations.prepare import ensure_prepared
        ensure_prepared(ROOT / "data", quiet=True)
    return path


def make_executor(family: str, planner, grounder, corpus: str | None = None, args=None):
    from lumos.agent import executor as ex
    if family == "maths":
        return ex.maths_executor()
    if args is not None and family == "web_agent":
        from lumos.tools.web import RANKERS
        if args.ranker in RANKERS:
            ranker = RANKERS[args.ranker]()
        else:
            from lumos.agent.ranker import LMRanker
            ranker = LMRanker(args.ranker, device=args.device, dtype="float32" if args.dtype == "int8" else args.dtype)
        if args.task == "miniwob":
            return ex.miniwob_executor(args.screenshots, args.miniwob_max_ms, ranker)
        return ex.mind2web_executor(ranker)
    if args is not None and args.task == "webshop":
        return ex.shop_executor(args.webshop_data, args.webshop_url)
    if family == "sql":
        return ex.SQLExecutor(args.db if args is not None else "sqlite", args and args.sql_time_limit)
    from lumos.agent.agent import answer_fn_from
    from lumos.agent.backends import GoldBackend
    qa = grounder if not isinstance(grounder, GoldBackend) else planner
    knowledge = None
    if corpus:
        from lumos.tools.qa import KnowledgeQuery
        knowledge = KnowledgeQuery(corpus_dir=corpus)
    return ex.qa_executor(answer_fn_from(qa), knowledge=knowledge)  # QA actions are answered by the backend


def main(argv=None):
    try:
        return run(parse_args(argv))
    except KeyboardInterrupt:  # during start-up (loading models, data); a run in progress handles it itself
        print("\ninterrupted before any example was run; nothing written", file=sys.stderr)
        return 130


def run(args):
    from lumos.cli import import_torch
    torch = import_torch()
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    from tqdm import tqdm

    from lumos.agent.agent import FAILURES, MAX_ROUNDS, Agent
    from lumos.agent.backends import BackendError
    from lumos.agent.budget import budget
    from lumos.hub import HubError
    from lumos.agent.tasks import TASKS as TASK_INFO, load_task, score
    from lumos.agent.trace import Trace, summarize

    family = TASK_INFO[args.task].family
    if family in ("web_agent", "webshop") and args.question:
        fail(f"--task {args.task} acts on web pages; it cannot answer a --question")
    if family == "sql" and args.question:
        fail(f"--task {args.task} asks questions about its own databases; it cannot answer a --question")
    if args.webshop_url and not args.webshop_url.startswith(("http://", "https://")):
        fail(f"--webshop-url must be an http(s):// URL, got {args.webshop_url!r}")
    examples = load_examples(args) if family in ("web_agent", "webshop") else None
    if family == "sql":   # they carry their gold annotations (converted from the gold SQL) for --backend gold
        examples = load_task(args.task, args.limit)
    try:
        planner, grounder, specs = make_backends(args, examples)
    except (BackendError, HubError) as e:   # HubError: a checkpoint spec that names nothing we can get
        fail(str(e))
    set_threads(args, planner, grounder)
    out = Path(args.out or ROOT / "outputs" / f"{args.task}-{args.formulation}-{tag(specs['planner'])}-{tag(specs['grounder'])}.jsonl")
    if args.task == "miniwob" and args.screenshots is None:
        args.screenshots = str(out.with_name(out.name.removesuffix(".jsonl") + "_screenshots"))
    executor = make_executor(family, planner, grounder, args.corpus, args)
    limits = budget(family, args.formulation)
    per_turn = ({"planner": args.max_new_tokens, "grounder": args.max_new_tokens} if args.max_new_tokens
                else {m: limits[m] for m in ("planner", "grounder")})
    agent = Agent(planner, grounder, executor, family, args.formulation,
                  max_rounds=WEB_MAX_ROUNDS if family == "web_agent" else MAX_ROUNDS,
                  max_new_tokens=per_turn, max_example_tokens=args.max_example_tokens or limits["example"])
    batch_size = min(args.batch_size, args.browsers) if args.task == "miniwob" else args.batch_size

    if args.question:  # one question of one's own: print the episode, write nothing
        ex = SimpleNamespace(id="question-0", question=args.question, answer=None)
        try:
            (ep,) = list(agent.run([ex], batch_size=1))
        except BackendError as e:
            fail(str(e))
        for s in ep.steps:
            print(f"[{s['module']}] {s['generation']}")
            for a in s.get("actions", []):
                print(f"    {a.get('text')} = {a.get('result')}" + (f"   ERROR: {a['error']}" if a.get("error") else ""))
        print(f"answer: {ep.prediction}" + (f"   (failure: {ep.failure}: {FAILURES[ep.failure]})" if ep.failure else ""))
        return 0

    examples = examples if examples is not None else load_task(args.task, args.limit)
    try:
        trace = Trace(out)
    except ValueError as e:
        fail(str(e))
    todo = [e for e in examples if e.id not in trace.done]
    if len(todo) < len(examples):
        print(f"resuming {out}: {len(examples) - len(todo)} of {len(examples)} examples already done "
              "(delete the file to start over)", file=sys.stderr)

    wanted = {e.id for e in examples}
    prior = [r for r in trace.rows if r["id"] in wanted]
    n_done, n_correct = len(prior), sum(bool(r["correct"]) for r in prior)  # the running metric of the bar
    t0, n_new, tokens_new = time.time(), 0, 0
    bar = tqdm(total=len(examples), initial=len(examples) - len(todo), desc=f"{args.task} {args.formulation}",
               unit="ex", dynamic_ncols=True)
    try:
        for ep in agent.run(todo, batch_size=batch_size):
            s = score(args.task, ep.prediction, ep.gold, ep.outcome)
            failure = ep.failure or (None if s["correct"] else "wrong_answer")  # every wrong answer has a cause
            row = {"id": ep.id, "question": ep.question, "gold": ep.gold, "prediction": ep.prediction,
                   "correct": bool(s["correct"]), "score": s, "failure": failure, "subgoals": ep.subgoals,
                   "outcome": ep.outcome,
                   "n_tokens": ep.n_tokens, "steps": ep.steps}
            trace.write(row)
            n_new, tokens_new = n_new + 1, tokens_new + ep.n_tokens
            n_done, n_correct = n_done + 1, n_correct + row["correct"]
            bar.set_postfix(acc=f"{n_correct / n_done:.3f}", refresh=False)
            bar.update(1)
    except (BackendError, RuntimeError) as e:   # RuntimeError: a browser that cannot start or open a page
        bar.close()
        trace.close()
        fail(f"{e} ({n_new} examples finished and saved in {out}; rerun to resume)")
    except KeyboardInterrupt:
        bar.close()
        trace.close()
        print(f"\ninterrupted: {n_new} examples finished and saved in {out}; rerun the same command to resume",
              file=sys.stderr)
        return 130
    finally:
        getattr(executor, "close", lambda: None)()   # the browsers of a live web task
    bar.close()
    trace.sort([e.id for e in examples])  # dataset order, whatever order the examples finished in

    rows = {r["id"]: r for r in trace.rows}
    done = [rows[e.id] for e in examples if e.id in rows]
    if not done:  # nothing to summarise: keep any earlier summary and report as they are
        print(f"no example finished; {out} holds no row of this run, nothing else written", file=sys.stderr)
        return 1
    minutes = (time.time() - t0) / 60
    n = len(done)
    total = summarize(done)
    metrics = {"accuracy": total["accuracy"]}
    if args.task == "hotpotqa":  # the paper reports HotpotQA by exact match and F1 too
        metrics.update({k: sum(r["score"][k] for r in done) / n for k in ("em", "f1")})
    if args.task == "mind2web":  # element accuracy, operation F1, step / task success (micro and macro)
        from lumos.agent.tasks.mind2web import aggregate
        metrics = aggregate([r["score"] for r in done])
    if args.task == "webshop":   # WebShop's average reward (the paper's metric) and success rate (reward 1)
        metrics = {"average_reward": sum(r["score"]["reward"] for r in done) / n,
                   "success": sum(r["correct"] for r in done) / n}
    if family == "sql":   # InterCode's success rate (reward 1) and mean reward, overall and per hardness
        from lumos.agent.tasks.intercode_sql import aggregate as sql_aggregate
        metrics = sql_aggregate([r["score"] for r in done])
        metrics["corrupt_gold"] = sum(bool((r.get("outcome") or {}).get("corrupt_gold")) for r in done)
    if args.task == "miniwob":   # success = MiniWoB's raw reward 1.0; per task too
        metrics["mean_reward"] = sum(r["score"]["reward"] for r in done) / n
        for t in args.miniwob_tasks.split(","):
            mine = [r["correct"] for r in done if r["id"].rsplit("-", 1)[0] == f"miniwob-{t}"]
            metrics[f"success_{t}"] = sum(mine) / max(len(mine), 1)
    summary = {"task": args.task, "formulation": args.formulation, "planner": specs["planner"],
               "grounder": specs["grounder"], "bos": "tokenizer default" if args.bos is None else args.bos,
               "n": len(done), "correct": total["correct"],
               "metrics": metrics, "failures": total["failures"],
               "budgets": {**per_turn, "example": agent.max_example_tokens},
               "tokens_generated": sum(r["n_tokens"] for r in done),
               "this_session": {"examples": n_new, "tokens": tokens_new, "minutes": round(minutes, 3),
                                "examples_per_minute": round(n_new / minutes, 2) if minutes > 0 else None},
               "trace": str(out)}
    summary_path = out.with_name(out.name.removesuffix(".jsonl") + ".summary.json")
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{args.task} ({args.formulation}), {len(done)} examples: "
          + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary["metrics"].items()))
    print(f"{total['correct']} correct; wrong by cause: "
          + (", ".join(f"{k} {v}" for k, v in summary["failures"].items()) or "none"))
    print(f"tokens generated: {summary['tokens_generated']}; this run: {n_new} examples in {minutes:.2f} min"
          + (f" ({summary['this_session']['examples_per_minute']} examples/minute)" if n_new else ""))
    print(f"trace: {out}\nsummary: {summary_path}")
    if args.html:
        from lumos.report import write_report
        print(f"report: {write_report(out, done, summary, FAILURES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
