"""Products and goals from WebShop's released files, read the way WebShop's engine reads them.

A data directory holds (the schemas of princeton-nlp/WebShop's data release):

    items_shuffle.json    [{asin, name, full_description, small_description, pricing ("$12.99" or
                            "$10.00 - $20.00"), images, category, query, product_category ("A › B › C"),
                            customization_options {Name: [{value, image}]}}, ...]
    items_ins_v2.json     {asin: {attributes: [...], instruction, instruction_attributes}}
    items_human_ins.json  {asin: [{instruction, instruction_attributes, instruction_options}, ...]}

`data/webshop/` is written by `python -m lumos.envs.webshop.generate` (made on first use); point
`--webshop-data` at WebShop's own release (e.g. items_shuffle_1000.json renamed, with the other two)
to use the real catalogue. Goals are WebShop's "human goals": one per human instruction, with a
price limit drawn above the product's price, then shuffled with seed 233 exactly as WebShop does.
WebShop draws prices and limits from Python's unseeded global generator; we draw them from
random.Random(233), so a catalogue always gives the same goals.
"""
import json
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

PRICE_RANGE = [10.0 * i for i in range(1, 100)]
FILES = ("items_shuffle.json", "items_ins_v2.json", "items_human_ins.json")


@dataclass
class Catalogue:
    products: list[dict]                    # WebShop's product dicts (Title, Description, BulletPoints, options, ...)
    by_asin: dict[str, dict]
    prices: dict[str, float]                # the price a purchase is charged (one draw for a price range)
    goals: list[dict] = field(default_factory=list)   # shuffled human goals


def _pricing(text) -> tuple[list[float], str]:
    """'$10.00 - $20.00' -> ([10.0, 20.0], '$10.0 to $20.0'); none -> ([100.0], '$100.0') as WebShop."""
    nums = []
    for part in str(text or "").split("$")[1:]:
        try:
            nums.append(float(Decimal(re.sub(r"[^\d.]", "", part))))
        except InvalidOperation:
            continue
    if not nums:
        return [100.0], "$100.0"
    if len(nums) == 1:
        return nums, f"${nums[0]}"
    return nums[:2], f"${nums[0]} to ${nums[1]}"


def product_from_raw(p: dict, attributes: dict) -> dict | None:
    """One items_shuffle row -> the product dict the pages and the reward read, or None when WebShop
    skips it (asin 'nan' or longer than 10 characters)."""
    asin = str(p.get("asin", ""))
    if asin == "nan" or not asin or len(asin) > 10:
        return None
    pricing, price_tag = _pricing(p.get("pricing"))
    options = {}
    for name, contents in (p.get("customization_options") or {}).items():
        if contents:   # WebShop: '/' in a value would break its URLs, so it becomes ' | '
            options[name.lower()] = [str(c["value"]).strip().replace("/", " | ").lower() for c in contents]
    small = p.get("small_description")
    return {
        "asin": asin, "name": p.get("name", ""), "Title": p.get("name", ""),
        "Description": p.get("full_description") or "",
        "BulletPoints": small if isinstance(small, list) else [small or ""],
        "category": p.get("category", ""), "query": str(p.get("query", "")).lower().strip(),
        "product_category": p.get("product_category", ""),
        "pricing": pricing, "Price": price_tag, "options": options,
        "MainImage": (p.get("images") or [""])[0], "Reviews": [], "Rating": "N.A.",
        "Attributes": (attributes.get(asin) or {}).get("attributes") or ["DUMMY_ATTR"],
    }


def human_goals(products: list[dict], prices: dict, human: dict, rng: random.Random) -> list[dict]:
    """One goal per human instruction (instructions without attributes are skipped, as WebShop does)."""
    goals = []
    for p in products:
        for ins in human.get(p["asin"], []):
            if not ins.get("instruction_attributes"):
                continue
            above = [x for x in PRICE_RANGE if x > prices[p["asin"]]][:4]
            if len(above) >= 2:
                upper = sorted(rng.sample(above, 2))[1]
                price_text = f", and price lower than {upper:.2f} dollars"
            else:
                upper, price_text = 1000000, ""
            goals.append({"asin": p["asin"], "category": p["category"], "query": p["query"], "name": p["name"],
                          "product_category": p["product_category"],
                          "instruction_text": ins["instruction"].strip(".") + price_text,
                          "attributes": ins["instruction_attributes"], "price_upper": upper,
                          "goal_options": ins.get("instruction_options") or []})
    return goals


def load_catalogue(data_dir: str | Path, num_products: int | None = None) -> Catalogue:
    """Read the three files of `data_dir` (the first `num_products` products only, like WebShop's
    num_products) into a Catalogue with its shuffled goals."""
    d = Path(data_dir)
    missing = [f for f in FILES if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{d} lacks {', '.join(missing)} (WebShop's data files; "
                                "`python -m lumos.envs.webshop.generate --out DIR` writes a small catalogue)")
    raw = json.loads((d / FILES[0]).read_text(encoding="utf-8"))
    attributes = json.loads((d / FILES[1]).read_text(encoding="utf-8"))
    human = json.loads((d / FILES[2]).read_text(encoding="utf-8"))
    rng = random.Random(233)
    products, seen = [], set()
    for p in raw[:num_products] if num_products else raw:
        prod = product_from_raw(p, attributes)
        if prod is not None and prod["asin"] not in seen:
            seen.add(prod["asin"])
            products.append(prod)
    prices = {p["asin"]: (p["pricing"][0] if len(p["pricing"]) == 1 else rng.uniform(*p["pricing"][:2]))
              for p in products}
    goals = human_goals(products, prices, human, rng)
    random.Random(233).shuffle(goals)      # = WebShop's random.seed(233); random.shuffle(goals)
    return Catalogue(products, {p["asin"]: p for p in products}, prices, goals)
