"""Prepare the default training data in seconds: `python data/prepare.py [--data-dir data]`.

GSM8K train -> data/annotations/lumos_maths_{plan,ground}_{iterative,onetime}.jsonl (the released
ai2lumos format) and the gold annotations data/gold/gsm8k_{train,test}.jsonl (test: replay only,
never training). Prints how many examples were converted and how many were dropped, by reason.
From Python: `from lumos.annotations.prepare import prepare, ensure_prepared`.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # run from a checkout without installing

from lumos.annotations.prepare import prepare  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parent),
                    help="folder holding gsm8k/{train,test}.jsonl; outputs go to its annotations/ and gold/")
    ap.add_argument("--quiet", action="store_true", help="print nothing")
    args = ap.parse_args(argv)
    prepare(args.data_dir, quiet=args.quiet)


if __name__ == "__main__":
    main()
