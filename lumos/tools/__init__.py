"""The tools a Lumos grounding can call (maths offline; complex QA over HTTP or a local corpus).

Every tool is a plain function ``tool(args: str, env: dict[str, str] | None = None)`` returning a
``str`` (or a tuple of ``str`` for a multi-assignment such as ``R5, R6 = SolveEquation(...)``) and
raising ``ToolError`` with a one-line message on bad input. ``env`` maps earlier result names
(``R1``, ``R2``...) to their values; the tools resolve ``R_j`` themselves so that exact values and
the paper's function-application form ``R4(R5, R6)`` survive. Nothing here imports ``lumos.model``.
"""


class ToolError(Exception):
    """A tool refused or failed on its input; ``str(err)`` is one line meant for the action record."""


class Value(str):
    """A result as a person writes it (``"0.333333"``), carrying the exact value behind it.

    It *is* a ``str`` (JSON, printing and comparisons see the display text); the maths tools read
    ``.exact`` (a sympy object) so that ``R1 = 1/3`` followed by ``R1 * 3`` gives ``1``, not
    ``0.999999``. A plain ``str`` in ``env`` still works: it is parsed back from its text.
    """

    exact = None

    def __new__(cls, text: str, exact=None):
        obj = super().__new__(cls, text)
        obj.exact = exact
        return obj
