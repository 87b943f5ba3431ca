"""A small WebShop-style catalogue, generated deterministically, in WebShop's released file schemas.

    python -m lumos.envs.webshop.generate --out data/webshop [--products 300] [--seed 0]

writes items_shuffle.json, items_ins_v2.json and items_human_ins.json (see catalogue.py). Twelve
product kinds from WebShop's five categories; each product gets a brand, a title that names its kind
and some of its attributes, bullet points, a description, colour/size options and a price; each gets
one human-style instruction asking for some of its attributes and one value of each option. Products
of a kind share their words, so search, attribute, option and price all matter. Same seed, same bytes.
"""
import argparse
import json
import random
import sys
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parents[3] / "data" / "webshop"

# kind: (category, query, product_category, title noun, attribute pool, option pools {name: values}, price range)
KINDS = {
    "t-shirt": ("fashion", "women's tops, tees & blouses",
                "Clothing, Shoes & Jewelry › Women › Clothing › Tops, Tees & Blouses › T-Shirts", "Women's T-Shirt Tee",
                ["slim fit", "loose fit", "long sleeve", "short sleeve", "machine wash", "cotton spandex", "v-neck"],
                {"Color": ["Black", "White", "Wine Red", "Navy Blue", "A01#black", "Heather Gray"],
                 "Size": ["Small", "Medium", "Large", "X-Large", "XX-Large"]}, (9, 35)),
    "running shoes": ("fashion", "men's running shoes", "Clothing, Shoes & Jewelry › Men › Shoes › Athletic › Running",
                      "Men's Running Shoes Sneakers",
                      ["non slip", "rubber sole", "breathable mesh", "lace up", "lightweight", "memory foam"],
                      {"Color": ["Black", "Grey", "Blue", "White Red"], "Size": ["8", "9", "10", "11", "12"]}, (25, 90)),
    "wall art": ("furniture", "wall art", "Home & Kitchen › Wall Art › Canvas Prints", "Canvas Wall Art Print",
                 ["ready hang", "solid wood", "living room", "bedroom decor", "waterproof canvas", "framed"],
                 {"Color": ["Turtles", "Ocean Sunset", "Black White Tree", "Abstract Blue"],
                  "Size": ["12x16 Inch", "16x20 Inch", "24x36 Inch"]}, (19, 80)),
    "speaker": ("electronics", "bluetooth speakers", "Electronics › Portable Audio & Video › Portable Speakers",
                "Portable Bluetooth Speaker",
                ["waterproof", "long battery life", "stereo sound", "hands free", "usb charging", "built-in microphone"],
                {"Color": ["Black", "Blue", "Red", "Camo"]}, (15, 120)),
    "headphones": ("electronics", "wireless headphones", "Electronics › Headphones › Over-Ear Headphones",
                   "Wireless Over Ear Headphones",
                   ["noise cancelling", "bluetooth 5.0", "foldable", "deep bass", "hands free", "long battery life"],
                   {"Color": ["Black", "White", "Rose Gold", "Silver"]}, (20, 150)),
    "coffee mug": ("furniture", "coffee mugs", "Home & Kitchen › Kitchen & Dining › Dining & Entertaining › Cups, Mugs",
                   "Ceramic Coffee Mug Cup",
                   ["dishwasher safe", "microwave safe", "lead free", "large capacity", "gift box"],
                   {"Color": ["White", "Black", "Sage Green", "Pink"], "Size": ["12 oz", "16 oz", "20 oz"]}, (8, 30)),
    "yoga mat": ("fashion", "yoga mats", "Sports & Outdoors › Exercise & Fitness › Yoga › Mats", "Yoga Mat Exercise Mat",
                 ["non slip", "extra thick", "eco friendly", "carrying strap", "high density", "sweat resistant"],
                 {"Color": ["Purple", "Black", "Teal", "Pink"], "Size": ["1/4 Inch", "1/2 Inch"]}, (15, 60)),
    "hair extension": ("beauty", "hair extensions", "Beauty & Personal Care › Hair Care › Hair Extensions",
                       "Clip in Hair Extensions Hairpiece",
                       ["natural looking", "heat resistant", "long lasting", "easy apply", "high quality"],
                       {"Color": ["Natural Black", "Dark Brown", "Ash Blonde", "Auburn"],
                        "Size": ["16 Inch", "20 Inch", "24 Inch"]}, (12, 70)),
    "moisturizer": ("beauty", "face moisturizer", "Beauty & Personal Care › Skin Care › Face › Creams & Moisturizers",
                    "Face Moisturizer Cream",
                    ["fragrance free", "paraben free", "hyaluronic acid", "sensitive skin", "anti aging", "cruelty free"],
                    {"Size": ["1.7 Fl Oz", "3.4 Fl Oz"]}, (9, 55)),
    "green tea": ("food", "green tea", "Grocery & Gourmet Food › Beverages › Tea › Green", "Green Tea Bags",
                  ["gluten free", "caffeine free", "non gmo", "usda organic", "sugar free", "individually wrapped"],
                  {"Flavor Name": ["Jasmine", "Mint", "Lemon Ginger", "Original"],
                   "Size": ["20 Count (Pack of 1)", "100 Count (Pack of 3)"]}, (5, 40)),
    "desk lamp": ("furniture", "desk lamps", "Home & Kitchen › Lighting & Ceiling Fans › Lamps & Shades › Desk Lamps",
                  "LED Desk Lamp Reading Light",
                  ["dimmable", "usb charging port", "eye caring", "touch control", "easy assemble", "energy efficient"],
                  {"Color": ["Black", "White", "Silver"]}, (18, 75)),
    "dog bed": ("furniture", "dog beds", "Pet Supplies › Dogs › Beds & Furniture › Beds", "Orthopedic Dog Bed Pet Bed",
                ["machine washable", "non slip bottom", "memory foam", "waterproof lining", "removable cover"],
                {"Color": ["Grey", "Brown", "Navy"], "Size": ["Medium", "Large", "X-Large"]}, (22, 99)),
}
BRANDS = ("Aurora Bexley Cobalt Dunmore Elmwood Fenwick Greyson Halden Ingram Juniper Kestrel Larkspur Merrow "
          "Norland Ostara Pemberly Quillon Rowan Sable Tamsin").split()
OPENERS = ("i am looking for {a} {what}", "i need {a} {what}", "find me {a} {what}", "i want to buy {a} {what}",
           "looking for {a} {what}")


def _an(words: str) -> str:
    return "an" if words[:1] in "aeiou" else "a"


def make_product(rng: random.Random, kind: str, n: int) -> tuple[dict, list[str]]:
    """One items_shuffle row and its attribute list."""
    category, query, breadcrumb, noun, pool, option_pools, (lo, hi) = KINDS[kind]
    attrs = rng.sample(pool, 3)
    in_title = attrs[: rng.randint(1, 2)]
    brand = rng.choice(BRANDS)
    title = f"{brand} {' '.join(a.title() for a in in_title)} {noun} {rng.choice(['', 'for Daily Use', 'Gift', '2-Pack', 'Upgraded'])}".strip()
    options = {name: [{"value": v, "image": None} for v in sorted(rng.sample(vals, rng.randint(2, len(vals))),
                                                                      key=vals.index)]
               for name, vals in option_pools.items()}
    cents = rng.choice([0.99, 0.95, 0.49, 0.0])
    price = rng.randint(lo, hi) + cents
    pricing = f"${price:.2f}" if rng.random() < 0.85 else f"${price:.2f} - ${price + rng.randint(3, 15):.2f}"
    bullets = [f"{a.capitalize()}: designed for everyday use." for a in attrs] + [f"Made by {brand}, model {n + 1}."]
    row = {"asin": f"B0{rng.randrange(16 ** 8):08X}", "name": title, "full_description":
           f"This {noun.lower()} from {brand} is {', '.join(attrs[:-1])} and {attrs[-1]}. {rng.choice(['A great gift.', 'Satisfaction guaranteed.', 'Ships in 2 days.'])}",
           "small_description": bullets, "pricing": pricing, "images": ["/static/images/no-image-available.png"],
           "average_rating": round(rng.uniform(3.0, 5.0), 1), "category": category, "query": query,
           "product_category": breadcrumb, "customization_options": options}
    return row, attrs


def make_instruction(rng: random.Random, kind: str, row: dict, attrs: list[str]) -> dict:
    """One human-style instruction: 1-2 of the product's attributes, one value of each option."""
    wanted = rng.sample(attrs, rng.randint(1, 2))
    chosen = [rng.choice(vals)["value"].lower() for vals in row["customization_options"].values()]
    what = f"{' and '.join(wanted)} {kind}"
    text = rng.choice(OPENERS).format(a=_an(what), what=what)
    names = [n.lower() for n in row["customization_options"]]
    if chosen:
        text += " with " + ", and ".join(f"{n}: {v}" for n, v in zip(names, chosen))
    return {"asin": row["asin"], "instruction": text, "instruction_attributes": wanted, "instruction_options": chosen}


def generate(n_products: int = 300, seed: int = 0) -> tuple[list, dict, dict]:
    """-> (items_shuffle rows, items_ins_v2 dict, items_human_ins dict), all from `seed`."""
    rng = random.Random(seed)
    kinds = list(KINDS)
    items, ins, human, asins = [], {}, {}, set()
    for n in range(n_products):
        kind = kinds[n % len(kinds)]
        row, attrs = make_product(rng, kind, n)
        while row["asin"] in asins:
            row["asin"] = f"B0{rng.randrange(16 ** 8):08X}"
        asins.add(row["asin"])
        items.append(row)
        goal = make_instruction(rng, kind, row, attrs)
        ins[row["asin"]] = {"attributes": attrs, "instruction": goal["instruction"],
                            "instruction_attributes": goal["instruction_attributes"]}
        human[row["asin"]] = [goal]
    rng.shuffle(items)     # WebShop's items_shuffle.json is shuffled too
    return items, ins, human


def write(out: str | Path, n_products: int = 300, seed: int = 0) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, obj in zip(("items_shuffle.json", "items_ins_v2.json", "items_human_ins.json"),
                         generate(n_products, seed)):
        (out / name).write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def ensure_default_data(quiet: bool = False) -> Path:
    """data/webshop/, generated (about a second) the first time something needs it."""
    if not all((DEFAULT_DIR / f).is_file() for f in ("items_shuffle.json", "items_ins_v2.json", "items_human_ins.json")):
        if not quiet:
            print(f"generating the WebShop catalogue into {DEFAULT_DIR} (python -m lumos.envs.webshop.generate) ...",
                  file=sys.stderr)
        write(DEFAULT_DIR)
    return DEFAULT_DIR


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/webshop", help="directory to write the three files into (default: data/webshop)")
    ap.add_argument("--products", type=int, default=300, help="number of products, one goal each (default: 300)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = ap.parse_args(argv)
    if args.products < 1:
        ap.error("--products must be at least 1")
    print(write(args.out, args.products, args.seed))


if __name__ == "__main__":
    main()
