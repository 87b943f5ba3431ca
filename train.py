"""Fine-tune a Lumos module (planning or grounding) on Lumos conversations.

    # smoke run (~2 min on 2 CPU cores): a tiny grounder from scratch, 2 processes, FSDP2 over gloo
    torchrun --nproc_per_node=2 train.py --module grounding --preset tiny --max-steps 150 \\
        --global-batch-size 16 --micro-batch-size 8 --lr 1e-3 --out runs/demo
    python run_agent.py --task gsm8k --planner gold --grounder runs/demo --limit 20    # use it
    # one process, the Lumos-O planner
    python train.py --module planning --formulation onetime --preset tiny --lr 1e-3 --out runs/plan
    # continue an interrupted run / export its latest checkpoint to HF layout
    python train.py --module planning --formulation onetime --preset tiny --lr 1e-3 --out runs/plan --resume
    python train.py --export-only --out runs/plan
    # the paper's recipe: fine-tune Llama-2-7B on GPUs
    torchrun --nnodes=4 --nproc_per_node=8 ... train.py --module planning --task unified \\
        --init /ckpt/Llama-2-7b-hf --micro-batch-size 2 --activation-checkpointing --out runs/plan7b
    python train.py --module grounding --init BASE_DIR --lora-rank 16 --lr 2e-4 --out runs/ground-lora

Writes to --out: log.jsonl (step, loss, lr, tokens/s, MFU, memory), checkpoints/step-N (DCP,
resumable with --resume), loss.png, and the model in HF layout (config.json, model.safetensors,
the tokenizer files) that run_agent.py's local backend and transformers load: at every --save-every
checkpoint and at the end, so a run stopped early still leaves its latest model. With --lora-rank,
the adapter only (adapter.safetensors + adapter_config.json naming the base), which run_agent.py
loads onto its base, merged.
"""
import argparse
import os
import subprocess
import sys
import traceback
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path

from lumos.cli import HelpFormatter, import_torch, nonnegative_float, nonnegative_int, positive_float, positive_int

try:  # lumos.model imports torch (seconds): Ctrl-C meanwhile is one line too
    import_torch()
    from lumos.model.config import PRESETS
    from lumos.model.lora import TARGETS as LORA_TARGETS
    from lumos.train.config import TrainConfig  # light: the trainer (torch.distributed) is imported in main()
except KeyboardInterrupt:
    print("train.py: interrupted before training started", file=sys.stderr)
    sys.exit(130)

ROOT = Path(__file__).resolve().parent
TASKS = ("maths", "complex_qa", "web_agent", "unified")
ARCH_FLAGS = ("dim", "n_layers", "n_heads", "n_kv_heads")  # --preset overrides, ModelArgs field names
# TrainConfig owns the defaults; the CLI shows them and fills every TrainConfig field of the same name.
DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
NOT_FLAGS = ("data", "tokenizer", "model_args", "progress")  # worked out by main() from other flags


def default_data(task: str, module: str, formulation: str) -> Path:
    kind = "plan" if module == "planning" else "ground"
    return ROOT / "data" / "annotations" / f"lumos_{task}_{kind}_{formulation}.jsonl"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    g = p.add_argument_group("what to train")
    g.add_argument("--module", choices=("planning", "grounding"), help="Lumos module (picks the default dataset)")
    g.add_argument("--task", choices=TASKS, default="maths", help="task family of the default dataset")
    g.add_argument("--formulation", choices=("iterative", "onetime"), default="iterative",
                   help="Lumos-I (iterative) or Lumos-O (onetime) annotations")
    g.add_argument("--data", help="Lumos jsonl file; overrides --module/--task/--formulation's default "
                                  "data/annotations/lumos_{task}_{plan|ground}_{formulation}.jsonl")
    g.add_argument("--init", help="HF or Meta Llama checkpoint directory to fine-tune (its own tokenizer is used: "
                                  "tokenizer.model or tokenizer.json), or 'smollm2' for the pretrained SmolLM2-135M-Instruct "
                                  "(fetched and converted once into $LUMOS_CACHE, see python -m lumos.model.smollm2)")
    g.add_argument("--preset", choices=sorted(PRESETS), help="train this architecture from scratch instead of --init")
    g.add_argument("--dim", type=positive_int, help="with --preset: override its model width")
    g.add_argument("--n-layers", type=positive_int, help="with --preset: override its number of transformer blocks")
    g.add_argument("--n-heads", type=positive_int, help="with --preset: override its attention heads")
    g.add_argument("--n-kv-heads", type=positive_int, help="with --preset: override its key/value heads (grouped-query attention)")
    g.add_argument("--tokenizer", help="SentencePiece .model for --preset (default: train one on the data)")
    g.add_argument("--tokenization", choices=("current", "paper"), default=DEFAULTS["tokenization"],
                   help="how the text after each mid-conversation '</s>' is tokenised: 'current' (default) as "
                   "today's transformers and open-instruct ('</s>\\n<|user|>' -> 2, 29871, 13, 29966, ...); "
                   "'paper' as the released Lumos models were trained (transformers < 4.34 stripped the "
                   "whitespace around '</s>': 2, 529, ...; 2 tokens fewer per turn)")
    g.add_argument("--vocab-size", type=positive_int, default=4096, help="size of the tokenizer trained on the data")
    g.add_argument("--out", required=True, help="run directory (log, checkpoints, exported model)")
    lo = p.add_argument_group("LoRA (with --init; default: full fine-tuning)")
    lo.add_argument("--lora-rank", type=int, default=DEFAULTS["lora_rank"], help="freeze the --init model and train rank-R adapters "
                    "(lumos/model/lora.py); the run exports adapter.safetensors + adapter_config.json (default 0: off)")
    lo.add_argument("--lora-alpha", type=float, help="adapter scale alpha/rank (default 2 x rank)")
    lo.add_argument("--lora-dropout", type=float, default=DEFAULTS["lora_dropout"], help="dropout on the adapters' input")
    lo.add_argument("--lora-targets", help=f"comma-separated layers to adapt, of {','.join(LORA_TARGETS)} "
                    f"(default: {','.join(DEFAULTS['lora_targets'])})")
    lo.add_argument("--lora-init", help="start from this adapter directory (e.g. a shipped one) instead of B = 0: "
                    "continues its training on a fresh schedule; its rank, alpha and targets are used")
    o = p.add_argument_group("optimisation (defaults: the Lumos paper)")
    o.add_argument("--epochs", type=positive_float, default=DEFAULTS["epochs"], help="passes over the data")
    o.add_argument("--max-steps", type=positive_int, help="optimizer steps; overrides --epochs")
    o.add_argument("--lr", type=positive_float, help="peak AdamW learning rate (the default, the paper's, fine-tunes a "
                   f"pretrained model; from scratch, use ~1e-3; LoRA ~1e-4 to 3e-4) (default: {DEFAULTS['lr']})")
    o.add_argument("--warmup-ratio", type=nonnegative_float, default=DEFAULTS["warmup_ratio"], help="linear warmup fraction, then linear decay to 0")
    o.add_argument("--weight-decay", type=nonnegative_float, default=DEFAULTS["weight_decay"], help="AdamW weight decay")
    o.add_argument("--max-grad-norm", type=nonnegative_float, default=DEFAULTS["max_grad_norm"],
                   help="clip the global gradient norm (0: off)")
    o.add_argument("--global-batch-size", type=positive_int, default=DEFAULTS["global_batch_size"],
                   help="sequences per optimizer step, all ranks together")
    o.add_argument("--micro-batch-size", type=positive_int, default=DEFAULTS["micro_batch_size"],
                   help="sequences per forward pass per rank; "
                   "gradient accumulation = global / (micro x world size)")
    o.add_argument("--max-seq-len", type=positive_int, default=DEFAULTS["max_seq_len"], help="truncate conversations (from the right) to this many tokens")
    o.add_argument("--seed", type=nonnegative_int, default=DEFAULTS["seed"], help="weight init and data order")
    r = p.add_argument_group("running")
    r.add_argument("--save-every", type=nonnegative_int, default=DEFAULTS["save_every"],
                   help="every N steps save a resumable checkpoint and export the model and loss.png to --out "
                   "(0: only at the end; always at the end)")
    r.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    r.add_argument("--export-only", action="store_true", help="export the latest checkpoint in --out to HF layout and exit")
    r.add_argument("--threads", type=positive_int, help="CPU threads per rank (default: usable CPUs / ranks on this node)")
    r.add_argument("--activation-checkpointing", action="store_true", help="recompute each block in backward (less memory)")
    r.add_argument("--shared-prefix", action=argparse.BooleanOptionalAction, default=DEFAULTS["shared_prefix"],
                   help="compute the tokens all conversations of a micro-batch start with (grounding's instructions) "
                        "once; same loss and gradients up to rounding, ~1/3 fewer tokens computed on Lumos grounding "
                        "(one process only: off under torchrun and with --activation-checkpointing)")
    r.add_argument("--dtype", choices=("float32", "bfloat16"), help="compute dtype (default: float32 on CPU, bfloat16 on CUDA)")
    r.add_argument("--export-dtype", choices=("float32", "bfloat16", "float16"), help="dtype of the exported weights (default: the compute dtype)")
    r.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    r.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    args = p.parse_args(argv)
    args.default_lr = args.lr is None
    args.lr = DEFAULTS["lr"] if args.default_lr else args.lr

    if args.export_only:
        return p, args
    if not args.data and not args.module:
        p.error("give --module {planning,grounding} (or --data PATH)")
    if (args.init is None) == (args.preset is None):
        p.error("give exactly one of --init CHECKPOINT_DIR (fine-tune) or --preset NAME (from scratch)")
    if args.init and any(getattr(args, k) for k in ARCH_FLAGS):
        p.error("--dim/--n-layers/--n-heads/--n-kv-heads go with --preset; --init keeps the checkpoint's architecture")
    if args.init and args.tokenizer:
        p.error("--tokenizer goes with --preset; --init uses the checkpoint's own tokenizer")
    if args.lora_rank < 0:
        p.error("--lora-rank must be positive (0: full fine-tuning)")
    if args.lora_rank and not args.init:
        p.error("--lora-rank adapts a pretrained model: give --init CHECKPOINT_DIR")
    if args.lora_alpha is not None and args.lora_alpha <= 0:
        p.error("--lora-alpha must be positive")
    if not 0 <= args.lora_dropout < 1:
        p.error("--lora-dropout must be in [0, 1)")
    if args.lora_init:  # warm start: the adapter's own shape, unless the flags contradict it
        from lumos.model.lora import is_adapter_dir, read_adapter_config
        if not is_adapter_dir(args.lora_init):
            p.error(f"--lora-init {args.lora_init}: no adapter_config.json there")
        conf = read_adapter_config(args.lora_init)
        for flag, given, have in (("rank", args.lora_rank or None, conf.rank), ("alpha", args.lora_alpha, conf.alpha),
                                  ("targets", args.lora_targets, ",".join(conf.targets))):
            if given is not None and given != have:
                p.error(f"--lora-{flag} {given} contradicts --lora-init's {have}")
        args.lora_rank, args.lora_alpha, args.lora_targets = conf.rank, conf.alpha, ",".join(conf.targets)
    args.lora_targets = tuple(t.strip() for t in (args.lora_targets or ",".join(DEFAULTS["lora_targets"])).split(",") if t.strip())
    bad = [t for t in args.lora_targets if t not in LORA_TARGETS]
    if bad or not args.lora_targets:
        p.error(f"--lora-targets: {','.join(bad) or 'none given'}; choose from {','.join(LORA_TARGETS)}")
    if args.init and args.init != "smollm2" and not Path(args.init).is_dir():
        p.error(f"--init {args.init}: no such directory")
    if args.tokenizer and not Path(args.tokenizer).is_file():
        p.error(f"--tokenizer {args.tokenizer}: no such file")
    if args.task in ("web_agent", "unified") and args.formulation == "onetime" and not args.data:
        p.error(f"--task {args.task} has only iterative annotations in Lumos; use --formulation iterative")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.global_batch_size % (args.micro_batch_size * world):
        p.error(f"--global-batch-size {args.global_batch_size} must be a multiple of --micro-batch-size "
                f"{args.micro_batch_size} x {world} ranks")
    if args.data is None:
        args.data = os.path.relpath(default_data(args.task, args.module, args.formulation))  # logs stay portable
    return p, args


def train_config(a, data: str, tokenizer: str, model_args: dict | None) -> TrainConfig:
    """The TrainConfig of parsed flags `a`: every field from the flag of the same name, but these four."""
    flags = {f.name: getattr(a, f.name) for f in fields(TrainConfig) if f.name not in NOT_FLAGS}
    return TrainConfig(data=data, tokenizer=tokenizer, model_args=model_args, progress=not a.no_progress, **flags)


def one_line(e: Exception) -> str:
    """read_conversations lists every bad row; the CLI shows the first and a count."""
    lines = str(e).splitlines()
    if len(lines) > 1 and lines[0].endswith("bad row(s):"):
        return f"{lines[1]} ({lines[0].split()[0]} bad rows in all)"
    return lines[0] if lines else type(e).__name__


def main(argv=None):
    parser, a = parse_args(argv)
    # Heavy imports after argument parsing: --help and flag errors answer instantly.
    from lumos.annotations.format import read_conversations
    from lumos.model.config import ModelArgs
    from lumos.train.distributed import barrier, init_distributed, shutdown
    from lumos.train.tokenize import train_sentencepiece
    from lumos.train.trainer import export_only, latest_train_state, train

    d = init_distributed(a.device, a.threads)
    code = 0
    try:
        if a.export_only:
            ckpt = export_only(a.out, d, a.export_dtype)
            if d.is_main:
                print(f"exported {ckpt} to {a.out}")
            shutdown(d)
            return
        data = Path(a.data)
        if not data.exists() and data.resolve().parent == ROOT / "data" / "annotations" and a.task == "maths":
            if d.is_main:  # the default maths files are built from the shipped GSM8K in a minute
                print(f"{data} is missing: running data/prepare.py", flush=True)
                subprocess.run([sys.executable, str(ROOT / "data" / "prepare.py")], check=True, cwd=ROOT)
            barrier(d)
        if not data.exists():
            raise ValueError(f"{data}: no such dataset file" + ("" if a.task == "maths" else
                             f" (download ai2lumos/{data.stem} from Hugging Face, or pass --data)"))
        rows = read_conversations(data)
        if not a.resume and latest_train_state(a.out) is not None:
            raise ValueError(f"{a.out} already holds checkpoints: pass --resume to continue that run, "
                             "or choose a new --out")
        if a.resume and latest_train_state(a.out) is None and d.is_main:
            print(f"--resume: no checkpoint in {a.out}/checkpoints yet, starting from step 0")
        out = Path(a.out)
        if a.init:
            init_dir = a.init
            if a.init == "smollm2":  # the pretrained base: fetched and converted on first use. --init stays
                from lumos.model.smollm2 import ensure_base  # "smollm2", so a LoRA adapter names a portable base
                if d.is_main:
                    ensure_base()
                barrier(d)
                init_dir = str(ensure_base())
            from lumos.model.tokenizer import load_tokenizer
            load_tokenizer(init_dir)  # fails early, in one line, when there is none
            tokenizer = init_dir  # HF: tokenizer.model or tokenizer.json in it; Meta: tokenizer.model one level up
            model_args = None
            if a.lora_rank and a.default_lr and d.is_main:
                print(f"note: the default --lr {a.lr:g} is the paper's full fine-tuning rate; LoRA adapters usually want "
                      "~1e-4 to 3e-4", flush=True)
        else:
            tokenizer = a.tokenizer
            if tokenizer is None:
                tokenizer = str(out / "tokenizer.model")
                if d.is_main and not (a.resume and Path(tokenizer).exists()):
                    out.mkdir(parents=True, exist_ok=True)
                    print(f"training a {a.vocab_size}-piece SentencePiece BPE on {len(rows)} conversations", flush=True)
                    train_sentencepiece([r["messages"] for r in rows], str(out / "tokenizer"), a.vocab_size)
                barrier(d)
            if a.default_lr and d.is_main:
                print(f"note: the default --lr {a.lr:g} is the paper's fine-tuning rate; a model trained from scratch "
                      "learns far faster with e.g. --lr 1e-3", flush=True)
            from lumos.model.tokenizer import load_tokenizer
            margs = ModelArgs.preset(a.preset)
            overrides = {k: getattr(a, k) for k in ARCH_FLAGS if getattr(a, k)}
            margs = replace(margs, **overrides)  # re-runs ModelArgs' checks (dim % n_heads, ...)
            margs.vocab_size = load_tokenizer(tokenizer).n_words
            margs.max_seq_len = max(margs.max_seq_len, a.max_seq_len)
            model_args = asdict(margs)
        train(train_config(a, str(data), tokenizer, model_args), d, rows)
    except (ValueError, FileNotFoundError) as e:  # bad data or paths: the same on every rank
        if d.is_main:
            print(f"train.py: error: {one_line(e)}", file=sys.stderr, flush=True)
        code = 2
    except KeyboardInterrupt:  # Ctrl-C: one line; the checkpoints and model already in --out stay
        if d.is_main:
            print(f"train.py: interrupted; {a.out} keeps its latest checkpoint (--resume continues) and model",
                  file=sys.stderr, flush=True)
        code = 130
    except BaseException:  # a bug or a crash: show it, and don't wait for the other ranks
        traceback.print_exc()
        code = 1
    shutdown(d, code)
    sys.exit(code)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # before training started (imports, process group)
        print("train.py: interrupted before training started", file=sys.stderr)
        sys.exit(130)
