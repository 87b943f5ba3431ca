"""The paper's annotation method: an LLM converts gold reasoning into Lumos subgoals and actions.

For each task, the few-shot prompt of `data/lumos/annotation_conversion_prompts.json` (e.g.
'instruction_maths_gsm') is followed by the task and its natural-language plan; any OpenAI-compatible
chat-completions endpoint answers in the paper's format:

    Subgoal 1: Calculate how much the soda costs in total.
    Action 1-1: R1 = Calculator(2 - 0.5) = 1.5

which is parsed into the same four datasets as the offline converter (lumos/annotations/build.py).

    OPENAI_API_KEY=... python -m lumos.annotations.llm --task maths --input data/gsm8k/train.jsonl \\
        --out runs/llm_annotations --base-url https://api.openai.com/v1 --model gpt-4o-mini

Robustness: retries with exponential backoff on 429, 5xx, timeouts and dropped connections (honouring
Retry-After); a requests-per-minute limit; every finished example is appended and flushed at once, so
an interrupted run loses nothing and a rerun skips the ids already written; replies that do not parse
are logged to `errors.jsonl` and skipped (a rerun tries them again).
"""
import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import requests
from tqdm import tqdm

from lumos import http
from lumos.agent.executor import parse_action
from lumos.annotations.build import KINDS, build_rows, dataset_filename

TASKS = {  # task -> (conversion prompt key, grounding family)
    "maths": ("instruction_maths_gsm", "maths"),
    "maths_prm": ("instruction_maths_prm", "maths"),
    "complex_qa": ("instruction_qa", "complex_qa"),
    "web_agent": ("instruction_web_agent", "web_agent"),
}
PROMPTS_PATH = Path(__file__).resolve().parents[2] / "data" / "lumos" / "annotation_conversion_prompts.json"


class ParseError(ValueError):
    pass


class FatalHTTPError(RuntimeError):
    """An answer retrying cannot fix (401, 403, 404, ...): stop the run, keep what is written."""


# ---------------------------------------------------------------------------------------------
# prompt and reply

def build_prompt(instruction: str, task: str, plan: str) -> str:
    """The paper's conversion prompt: instruction with its examples, then this task and its plan."""
    return f"{instruction}Task: {task.strip()}\n\nNatural language plan:\n{plan.strip()}\n\nSubgoal-based plan:\n"


_SUBGOAL = re.compile(r"^\s*Subgoal\s+(\d+)\s*:\s*(.+?)\s*$")
_ACTION = re.compile(r"^\s*Action\s+(\d+)\s*-\s*(\d+)\s*:\s*(.+?)\s*$")


def parse_reply(reply: str) -> tuple[list[str], list[list[str]], list[str]]:
    """A model reply -> (subgoals 'Subgoal k: ...', actions per subgoal 'R = Name(args)', result per subgoal).

    Raises ParseError for anything that is not a clean plan: no subgoals, numbering out of order,
    a subgoal without actions, an action under the wrong subgoal, a malformed action. A final
    `Output = ...` variable is renamed R{last+1}, as in the released Lumos data."""
    subgoals, actions, results = [], [], []
    n_r = 0
    for line in reply.splitlines():
        if not line.strip():
            continue
        if m := _SUBGOAL.match(line):
            if int(m.group(1)) != len(subgoals) + 1:
                raise ParseError(f"subgoal {m.group(1)} out of order")
            subgoals.append(f"Subgoal {m.group(1)}: {m.group(2)}")
            actions.append([])
            results.append("")
        elif m := _ACTION.match(line):
            k, j = int(m.group(1)), int(m.group(2))
            if k != len(subgoals) or j != len(actions[-1]) + 1:
                raise ParseError(f"action {k}-{j} does not follow subgoal {len(subgoals)}")
            action = parse_action(m.group(3))          # the executor's parser: what the agent will run
            if action.error or not action.outputs:
                raise ParseError(action.error or f"no 'R = ' before the action: {m.group(3)[:80]!r}")
            names, call = action.outputs, action.text.split("=", 1)[1].strip()
            outs = ", ".join(names)
            for name in names:
                if r := re.fullmatch(r"R(\d+)", name):
                    n_r = max(n_r, int(r.group(1)))
            if names == ["Output"]:
                n_r += 1
                outs = f"R{n_r}"
            actions[-1].append(f"{outs} = {call}")
            results[-1] = action.stated or ""         # the '= value' after the call, its full stop dropped
        elif subgoals:
            raise ParseError(f"unexpected line: {line.strip()[:60]!r}")
        # text before the first subgoal (a preamble) is ignored
    if not subgoals:
        raise ParseError("no 'Subgoal k:' lines")
    if any(not a for a in actions):
        raise ParseError("a subgoal has no actions")
    return subgoals, actions, results


# ---------------------------------------------------------------------------------------------
# HTTP

class Client:
    """POST {base_url}/chat/completions with retries, backoff and a requests-per-minute limit."""

    def __init__(self, base_url, model, api_key=None, rpm=60.0, timeout=120.0, max_retries=6, backoff=2.0,
                 max_backoff=60.0, temperature=0.0, max_tokens=1024, log=print):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.interval = 60.0 / rpm if rpm > 0 else 0.0
        self.timeout, self.max_retries, self.backoff, self.max_backoff = timeout, max_retries, backoff, max_backoff
        self.temperature, self.max_tokens, self.log = temperature, max_tokens, log
        self.session = requests.Session()
        self._last = -1e9
        self.n_requests = 0

    def _wait_turn(self):
        delay = self._last + self.interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._last = time.monotonic()

    def complete(self, prompt: str) -> str:
        """The reply text; raises RuntimeError after max_retries, FatalHTTPError on 4xx other than 429."""
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "temperature": self.temperature, "max_tokens": self.max_tokens}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:  # retries 429, 5xx, timeouts and dropped connections, honouring Retry-After
            r = http.request("POST", self.url, session=self.session, json=body, headers=headers, timeout=self.timeout,
                             retries=self.max_retries, backoff=self.backoff, max_backoff=self.max_backoff,
                             before=self._before_attempt, log=self.log)
        except http.HTTPRetryError as e:  # run() logs a RuntimeError as a failed example and goes on
            raise RuntimeError(f"gave up after {e.attempts} attempts ({e.cause})") from None
        if r.status_code != 200:
            raise FatalHTTPError(f"HTTP {r.status_code} from {self.url}: {r.text[:200]}")
        try:
            return r.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ParseError(f"response is not a chat completion: {r.text[:120]!r}") from None

    def _before_attempt(self):
        self._wait_turn()  # every attempt, retries included, counts against the requests-per-minute limit
        self.n_requests += 1


# ---------------------------------------------------------------------------------------------
# the run

def load_examples(path, id_prefix: str, question_field="question", plan_field="answer", limit=None):
    """jsonl rows -> [(id, task, plan)]; a GSM8K answer loses its '#### value' line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if limit is not None and len(out) >= limit:
                break
            if line.strip():
                row = json.loads(line)
                plan = str(row[plan_field]).split("####")[0]
                out.append((f"{id_prefix}-{i}", row[question_field], plan))
    return out


def _resume(out_dir: Path, family: str) -> set[str]:
    """Ids written to all four files; rows of a half-written example are removed so it is redone."""
    rows = {}                                                  # path -> [(id or None, line)]
    for k in KINDS:
        p = out_dir / dataset_filename(family, k)
        rows[p] = []
        if p.exists():
            for line in filter(None, p.read_text(encoding="utf-8").split("\n")):  # U+2028 may sit in JSON
                try:
                    rows[p].append((json.loads(line)["id"], line))
                except (ValueError, KeyError, TypeError):
                    rows[p].append((None, line))               # a torn last line from a crash
    done = set.intersection(*({id for id, _ in r} for r in rows.values())) - {None}
    for p, r in rows.items():
        if any(id not in done for id, _ in r):
            p.write_text("".join(line + "\n" for id, line in r if id in done), encoding="utf-8")
    return done


def run(task: str, input_path, out_dir, client: Client, dataset: str | None = None, id_prefix: str | None = None,
        limit=None, question_field="question", plan_field="answer", prompts_path=PROMPTS_PATH, quiet=False) -> dict:
    """Convert every example of `input_path`; returns counts {'written', 'skipped_done', 'garbled', 'failed'}."""
    key, family = TASKS[task]
    instruction = json.loads(Path(prompts_path).read_text(encoding="utf-8"))[key]
    input_path, out_dir = Path(input_path), Path(out_dir)
    id_prefix = id_prefix or f"{input_path.parent.name}-{input_path.stem}"
    dataset = dataset or input_path.parent.name
    out_dir.mkdir(parents=True, exist_ok=True)
    done = _resume(out_dir, family)
    files = {k: open(out_dir / dataset_filename(family, k), "a", encoding="utf-8") for k in KINDS}
    errors = open(out_dir / "errors.jsonl", "a", encoding="utf-8")
    counts = {"written": 0, "skipped_done": 0, "garbled": 0, "failed": 0}

    def log_error(id, kind, message, reply=""):
        counts[kind] += 1
        errors.write(json.dumps({"id": id, "error": kind, "message": message, "reply": reply}) + "\n")
        errors.flush()

    try:
        examples = load_examples(input_path, id_prefix, question_field, plan_field, limit)
        for id, question, plan in tqdm(examples, desc=f"llm {task}", disable=quiet):
            if id in done:
                counts["skipped_done"] += 1
                continue
            reply = ""
            try:
                reply = client.complete(build_prompt(instruction, question, plan))
                subgoals, actions, results = parse_reply(reply)
            except ParseError as e:
                log_error(id, "garbled", str(e), reply)
                continue
            except FatalHTTPError:
                raise
            except RuntimeError as e:
                log_error(id, "failed", str(e))
                continue
            rows = build_rows(dataset, id, question, subgoals, actions, results, family)
            for k in KINDS:                                    # append + flush: a crash loses nothing done
                files[k].write(json.dumps(rows[k], ensure_ascii=False) + "\n")
                files[k].flush()
            counts["written"] += 1
    finally:
        for f in list(files.values()) + [errors]:
            f.close()
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=sorted(TASKS), default="maths", help="which conversion prompt to use")
    ap.add_argument("--input", required=True, help="jsonl with a question and a gold reasoning per row")
    ap.add_argument("--out", required=True, help="output folder for the four lumos_*.jsonl files and errors.jsonl")
    ap.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
                    help="OpenAI-compatible API root (default $OPENAI_BASE_URL or api.openai.com/v1)")
    ap.add_argument("--model", default=os.environ.get("OPENAI_MODEL"), help="model name (default $OPENAI_MODEL)")
    ap.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    ap.add_argument("--rpm", type=float, default=60, help="at most this many requests per minute (0: no limit)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per request")
    ap.add_argument("--max-retries", type=int, default=6, help="retries on 429/5xx/timeouts before skipping")
    ap.add_argument("--backoff", type=float, default=2.0, help="first retry delay in seconds, doubled each retry")
    ap.add_argument("--max-tokens", type=int, default=1024)
    ap.add_argument("--limit", type=int, default=None, help="only the first N rows")
    ap.add_argument("--question-field", default="question")
    ap.add_argument("--plan-field", default="answer", help="field with the gold reasoning ('#### x' is cut)")
    ap.add_argument("--id-prefix", default=None, help="ids are PREFIX-<row>, default <folder>-<file stem>")
    args = ap.parse_args(argv)
    if not args.model:
        ap.error("--model (or $OPENAI_MODEL) is required")
    log = lambda msg: tqdm.write(msg, file=sys.stderr)  # noqa: E731
    client = Client(args.base_url, args.model, os.environ.get(args.api_key_env), rpm=args.rpm,
                    timeout=args.timeout, max_retries=args.max_retries, backoff=args.backoff,
                    max_tokens=args.max_tokens, log=log)
    try:
        counts = run(args.task, args.input, args.out, client, id_prefix=args.id_prefix, limit=args.limit,
                     question_field=args.question_field, plan_field=args.plan_field)
    except FatalHTTPError as e:
        sys.exit(f"error: {e} (finished rows are kept in {args.out}; rerun to resume)")
    print(json.dumps(counts), file=sys.stderr)


if __name__ == "__main__":
    main()
