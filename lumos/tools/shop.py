"""The Lumos WebShop actions: Search, FeatureRetrieve, Pick, Click (allenai/lumos eval/webshop/shop_tool.py).

They act on the episode's shop session, env["Env"] (a lumos.envs.webshop.browser.Browser, embedded or
over HTTP), and on earlier results R_j:

    R1 = Search(Find me slim fit ... dollars)          -> 'b09s3bn15c - Mens Linen Shirt ... ** b094q7b3ss - Women ...'
                                                          (the first two results as 'asin - title', joined by ' ** ')
    R2 = Click(b094q7b3ss)                             -> the new page's clickables, as a Python list
    R3 = FeatureRetrieve(R2, Query: Find me ...)       -> 'black, large, x-large' (the 3 options of R2's item page
                                                          most similar to the query)
    R7 = Pick(Item_names: R1, Item_features: [R3, R6], Query: ...)   -> 'b094q7b3ss' (the most similar item)
    R13 = Click(buy now)                               -> the reward, e.g. '0.75' (the episode is over)

Click's argument is a clickable (a result's ASIN, an option, 'buy now', '< prev', 'next >', ...) or an
R_j holding one. Similarity: Lumos scored (query, candidate) pairs with the cross-encoder
cross-encoder/stsb-roberta-large; we score them with the project's BM25 (lumos/tools/bm25.py), built
over the candidates of each call (ties keep the page's order), so no model is downloaded. A click on
something the page does not offer, or any action after Buy Now, is a ToolError: the executor records
it and the session stays where it was.
"""
import ast
import re

from lumos.tools import ToolError, Value
from lumos.tools.bm25 import BM25

_REF = re.compile(r"^\s*(R\d+)\s*$")
_QUERY = re.compile(r"\bQUERY\s*:\s*", re.I)
NAVIGATION = {"back to search", "< prev", "next >", "description", "features", "reviews", "attributes", "buy now", "search"}


def _browser(env: dict):
    b = (env or {}).get("Env")
    if b is None or not hasattr(b, "step"):
        raise ToolError("no shop session in this episode (the executor's start() opens one)")
    return b


def _value(name: str, env: dict):
    if name not in env:
        raise ToolError(f"undefined variable {name}")
    return env[name]


def _split_query(args: str) -> tuple[str, str]:
    """'R2, Query: find me ...' -> ('R2', 'find me ...'). The query runs to the end (a trailing '.' dropped)."""
    m = _QUERY.search(args)
    if m is None:
        raise ToolError("missing 'Query: ...' argument")
    return args[:m.start()].strip().rstrip(","), args[m.end():].strip().rstrip(".").strip()


def best(query: str, candidates: list[str], k: int) -> list[int]:
    """Indices of the k candidates most similar to `query` (BM25 over the candidates), best first."""
    return BM25(candidates).top(query, k)


def _step(env: dict, action: str) -> tuple:
    from lumos.envs.webshop.browser import ShopError
    try:
        obs, reward, done, info = _browser(env).step(action)
    except ShopError as err:
        raise ToolError(str(err)) from None
    if info.get("error"):
        raise ToolError(info["error"])
    return obs, reward, done


def search(args: str, env: dict) -> Value:
    """Search(query): the first two results as 'asin - title' joined by ' ** '."""
    query = args.strip().rstrip(".").strip()
    if not query:
        raise ToolError("Search needs a query")
    _step(env, f"search[{query}]")
    items = [f"{asin.lower()} - {title}" for asin, title, _ in _browser(env).page.products[:2]]
    if not items:
        raise ToolError(f"no product matches {query[:80]!r}")
    return Value(" ** ".join(items))


def click(args: str, env: dict) -> Value:
    """Click(item): the clickables of the page it leads to, or the reward once Buy Now is clicked."""
    target = args.strip().rstrip(".").strip()
    m = _REF.match(target)
    if m:
        target = str(_value(m.group(1), env)).strip()
    if not target:
        raise ToolError("Click needs something to click")
    _, reward, done = _step(env, f"click[{target}]")
    if done:
        return Value(repr(float(reward)), exact=float(reward))
    clickables = _browser(env).clickables
    return Value(repr(clickables), exact=clickables)


def _feature_list(value) -> list[str]:
    """An earlier Click result -> the item page's options (the clickables minus navigation buttons;
    Lumos took clickables[6:], the same list on an item page)."""
    items = value.exact if isinstance(getattr(value, "exact", None), list) else None
    if items is None:   # a plain string: the repr of a list, or comma-separated features
        text = str(value).strip()
        try:
            parsed = ast.literal_eval(text) if text.startswith("[") and len(text) < 20000 else None
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed = None
        items = parsed if isinstance(parsed, list) else [t.strip() for t in text.split(",")]
    return [str(x) for x in items if str(x).strip() and str(x).lower() not in NAVIGATION]


def feature_retrieve(args: str, env: dict) -> Value:
    """FeatureRetrieve(R_j, Query: q): the three features of R_j most similar to q, ', '-joined."""
    source, query = _split_query(args)
    m = _REF.match(source)
    features = _feature_list(_value(m.group(1), env)) if m else [f.strip() for f in source.strip("[]").split(",") if f.strip()]
    if not features:
        return Value("")
    return Value(", ".join(features[i] for i in best(query, features, 3)))


def pick(args: str, env: dict) -> Value:
    """Pick(Item_names: R1, Item_features: [R3, R6], Query: q): the ASIN of the item (from R1's list)
    whose 'asin - title. Available features: ...' is most similar to q. The i-th feature variable (in R
    order) describes the i-th item, as in Lumos."""
    head, query = _split_query(args)
    m = re.match(r"\s*Item_names\s*:\s*(R\d+)\s*,\s*Item_features\s*:\s*\[(.*)\]\s*$", head, re.I | re.S)
    if m is None:
        raise ToolError("expected 'Item_names: R_i, Item_features: [R_j, ...], Query: ...'")
    items = [s.strip() for s in str(_value(m.group(1), env)).split(" ** ") if s.strip()]
    refs = sorted(set(re.findall(r"R(\d+)", m.group(2))), key=int)
    described = [f"{items[i]}. Available features: {env[f'R{r}']}" for i, r in enumerate(refs)
                 if i < len(items) and f"R{r}" in env]
    if not items:
        raise ToolError("Item_names holds no item")
    choice = described[best(query, described, 1)[0]] if described else items[0]
    return Value(choice.split(" - ")[0].strip())


SHOP_TOOLS = {"Search": search, "FeatureRetrieve": feature_retrieve, "Pick": pick, "Click": click}
