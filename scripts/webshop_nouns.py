"""How far lumos.envs.webshop.reward.title_nouns is from WebShop's spaCy noun tagging, on constructed names.

    pip install spacy <an en_core_web_sm 3.x package>      # only for this script
    python scripts/webshop_nouns.py --write tests/data/webshop_spacy_nouns.json

WebShop's r_type keeps the tokens spaCy's en_core_web_sm tags NOUN/PROPN in the goal's and the bought
product's names. This script tags the names below with spaCy, records the nouns (the test
tests/test_webshop_env.py compares our heuristic with that record, no spaCy needed), and prints the
agreement: per name (identical noun sets, mean Jaccard) and per (bought, goal) pair (same title_score
bucket, same r_type when the query differs and categories do not match, i.e. when the nouns decide).
Without spaCy it reads the record given by --read and prints the same numbers.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lumos.envs.webshop.reward import title_nouns, type_reward  # noqa: E402

NAMES = [
    "Bexley Heat Resistant Clip in Hair Extensions Hairpiece 2-Pack",
    "Women Cold Shoulder Tops, Summer Butterfly Print Shirts Fashion Casual Short Sleeve Plus-Size Tunic Top Tee and Blouse",
    "Mens Linen Shirt,Men's Striped Shirts Casual Short Sleeve Button Down Shirts Regular Fit Hawaiian Shirts Beach Tees Tops",
    "African American Wall Art Get Naked Fashion Black Girl And Bathtub Canvas Prints Gray Pink Painting Picture Modern Artwork For Bathroom Living Room Home Wall Decor Framed Ready To Hang 16x24 Inch",
    "Sencillez Canvas Wall Art Abstract Regalite Turquoise Marble Mixed Colors Blue Teal Gold Foil Digital Art Modern Art Bohemian Colorful Multicolor Ultra for Living Room Bedroom Office (20x30 inches)",
    "Portable Bluetooth Speaker, Waterproof Wireless Speaker with Loud Stereo Sound, 24H Playtime",
    "Noise Cancelling Wireless Over Ear Headphones with Deep Bass, Foldable Bluetooth 5.0 Headset",
    "Ceramic Coffee Mug 16 oz, Large Capacity Tea Cup with Handle, Dishwasher and Microwave Safe",
    "Extra Thick Yoga Mat Non Slip Exercise Mat with Carrying Strap for Pilates and Floor Workouts",
    "Face Moisturizer Cream with Hyaluronic Acid, Fragrance Free Daily Moisturizing Lotion for Sensitive Skin",
    "Organic Green Tea Bags, Jasmine Flavor, 100 Count (Pack of 3), Caffeine Free",
    "LED Desk Lamp with USB Charging Port, Dimmable Eye-Caring Reading Light, Touch Control",
    "Orthopedic Dog Bed for Large Dogs, Memory Foam Pet Bed with Removable Washable Cover",
    "Men's Running Shoes Lightweight Breathable Mesh Athletic Sneakers Non Slip Rubber Sole",
    "Women's Slim Fit Long Sleeve T-Shirt Cotton Spandex V-Neck Tee",
    "Stainless Steel Water Bottle, Vacuum Insulated, Leak Proof Lid, 32 oz",
    "Kids Backpack for School, Lightweight Waterproof Bookbag with Chest Strap",
    "Gluten Free Dark Chocolate Almond Snack Bars, Individually Wrapped, 12 Count",
    "Queen Size Bed Sheets Set, Deep Pocket Microfiber 4 Piece Bedding, Wrinkle Resistant",
    "Replacement Remote Control for Samsung Smart TV, No Setup Needed",
    "Vitamin C Serum for Face with Vitamin E, Anti Aging Brightening Formula, 1 fl oz",
    "Wooden Kitchen Utensil Set of 6, Non Stick Cooking Spoons and Spatulas",
    "slim fit cotton t-shirt for women",
    "heat resistant hair extension that looks natural",
    "noise cancelling headphones",
    "Bamboo Shoe Rack Organizer 4-Tier Stackable Storage Shelf for Entryway Closet",
    "Hand Blown Wine Glasses Set of 4, Crystal Clear Lead-Free Stemware, 18 oz",
    "USB C Fast Charger, 20W Wall Charger Block with 6ft Braided Cable for iPhone",
    "Men's Leather Wallet RFID Blocking Slim Bifold with ID Window",
    "Scented Soy Candles Gift Set, Lavender Vanilla Aromatherapy Candle for Home",
]
# (bought, goal) index pairs: same kind, related kinds and unrelated kinds
PAIRS = [(0, 23), (1, 14), (1, 2), (2, 14), (3, 4), (4, 3), (5, 6), (6, 24), (6, 5), (7, 26), (8, 13),
         (9, 20), (10, 17), (11, 27), (12, 18), (13, 2), (14, 22), (15, 7), (16, 8), (17, 10), (18, 25),
         (19, 27), (20, 9), (21, 7), (22, 14), (23, 0), (24, 6), (25, 18), (26, 7), (27, 11), (28, 16),
         (29, 21), (0, 12), (3, 19), (5, 28), (10, 29), (14, 1), (2, 1), (20, 21), (26, 15)]


def bucket(score: float) -> str:
    """The title_score ranges r_type distinguishes."""
    return "0" if score == 0 else "<0.1" if score < 0.1 else "<=0.2" if score <= 0.2 else ">0.2"


def compare(spacy_nouns: dict[str, list[str]]) -> dict:
    ours = {n: title_nouns(n) for n in NAMES}
    same = sum(set(ours[n]) == set(spacy_nouns[n]) for n in NAMES)
    jac = sum(len(set(ours[n]) & set(spacy_nouns[n])) / max(len(set(ours[n]) | set(spacy_nouns[n])), 1)
              for n in NAMES) / len(NAMES)
    diff_bucket, diff_rtype, deltas = [], 0, []
    for b, g in PAIRS:
        p = {"query": "q1", "product_category": "a › b", "name": NAMES[b]}
        goal = {"query": "q2", "product_category": "c › d", "name": NAMES[g]}   # the nouns alone decide
        r_ours = type_reward(p, goal)
        r_sp = type_reward(p, goal, nouns=lambda t: spacy_nouns[t])
        deltas.append(abs(r_ours["title_score"] - r_sp["title_score"]))
        if bucket(r_ours["title_score"]) != bucket(r_sp["title_score"]):
            diff_bucket.append((b, g, round(r_ours["title_score"], 3), round(r_sp["title_score"], 3)))
        diff_rtype += r_ours["r_type"] != r_sp["r_type"]
    return {"names": len(NAMES), "identical_noun_sets": same, "mean_jaccard": round(jac, 4), "pairs": len(PAIRS),
            "same_r_type": len(PAIRS) - diff_rtype, "mean_abs_title_score_diff": round(sum(deltas) / len(deltas), 4),
            "bucket_differences": diff_bucket}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", help="tag NAMES with spaCy and save {name: nouns} here")
    ap.add_argument("--read", default=str(Path(__file__).resolve().parents[1] / "tests/data/webshop_spacy_nouns.json"),
                    help="the saved spaCy nouns to compare with when not tagging (default: %(default)s)")
    ap.add_argument("--model", default="en_core_web_sm", help="spaCy pipeline to load (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.write:
        import spacy
        nlp = spacy.load(args.model)
        record = {"_model": f"{nlp.meta['name']} {nlp.meta['version']}, spaCy {spacy.__version__}",
                  **{n: [t.text.lower() for t in nlp(n) if t.pos_ in ("PNOUN", "NOUN", "PROPN")] for n in NAMES}}
        Path(args.write).write_text(json.dumps(record, indent=1) + "\n")
    else:
        record = json.loads(Path(args.read).read_text())
    print(json.dumps({"model": record.get("_model"), **compare(record)}, indent=1))


if __name__ == "__main__":
    main()
