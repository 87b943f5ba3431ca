"""Environments the agent's tools act on (recorded Mind2Web pages, a headless browser, the WebShop shop,
the InterCode-SQL databases, ...).

They are real things a user may run without the agent: nothing here imports lumos.model or lumos.agent.
"""
import os
from pathlib import Path


def cache_root() -> Path:
    """Where environments and tools keep what they build or fetch: $LUMOS_CACHE, default ~/.cache/lumos.
    (lumos/model/smollm2.py spells the same rule once more: the model package imports nothing of ours.)"""
    return Path(os.environ.get("LUMOS_CACHE", Path.home() / ".cache" / "lumos"))
