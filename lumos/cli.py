"""What the command-line scripts (run_agent.py, train.py, python -m lumos.report) share: argparse
types that refuse impossible numbers (argparse then exits 2 with one line), and a help formatter that
shows every default while keeping the hand-wrapped example lines of a script's docstring.

    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--limit", type=positive_int, default=None, help="first N examples")
"""
import argparse
import re

STATES_DEFAULT = re.compile(r"\(default\b|\bdefault:", re.IGNORECASE)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Description and epilog verbatim; "(default: X)" after every option's help that does not already
    state its default in words ("(default ..." or "default: ...", e.g. a computed default)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, argparse.SUPPRESS) or STATES_DEFAULT.search(text) or action.default is False:
            return text  # nothing to show, the help states it in words, or a switch that is off unless given
        return super()._get_help_string(action)


def _number(kind, low: float, inclusive: bool, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {what}")
        return value
    parse.__name__ = f"{what.replace(' ', '_')}_{kind.__name__}"  # argparse names the type in some errors
    return parse


def import_torch():
    """`import torch` such that a Ctrl-C meanwhile raises KeyboardInterrupt. torch's C++ start-up imports
    numpy and discards any exception of that import, so a Ctrl-C landing there was lost (the script then ran
    on); numpy imported first, from Python, lets it through."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        pass
    import torch
    return torch


positive_int = _number(int, 0, False, "a positive integer (1 or more)")
nonnegative_int = _number(int, 0, True, "0 or more")
positive_float = _number(float, 0.0, False, "a positive number")
nonnegative_float = _number(float, 0.0, True, "0 or more")
