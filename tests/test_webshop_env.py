"""The embedded WebShop: reward (hand-computed cases, thefuzz parity), catalogue, pages, sessions."""
import json
import random
import string
from pathlib import Path

import pytest

from lumos.envs.webshop import generate, pages
from lumos.envs.webshop.browser import Browser, InProcess
from lumos.envs.webshop.catalogue import load_catalogue
from lumos.envs.webshop.reward import get_reward, normalize_color, title_nouns, token_set_ratio, type_reward
from lumos.envs.webshop.shop import parse_keywords, parse_literal


# ---------------------------------------------------------------------------------------------
# reward

def test_token_set_ratio_matches_thefuzz():
    fuzz = pytest.importorskip("thefuzz.fuzz")   # test-only reference (pip install -e ".[test]")
    rng = random.Random(0)
    words = ["black", "large", "x-large", "a01#black", "Slim Fit", "men's", "é", "16x20 inch", "16 x 20 inch",
             "wine red", "", " ", "中", "Ä", "1 | 4 inch", "1/4 inch", "pack of 3"]
    for _ in range(3000):
        a = " ".join(rng.choice(words) for _ in range(rng.randint(0, 4)))
        b = " ".join(rng.choice(words) for _ in range(rng.randint(0, 4)))
        if rng.random() < 0.3:
            a = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 15)))
        assert token_set_ratio(a, b) == fuzz.token_set_ratio(a, b), (a, b)


def test_token_set_ratio_by_hand():
    assert token_set_ratio("x-large", "large") == 100        # {x, large} contains {large}
    # {16x20, inch} vs {16, 20, inch, x}: common "inch"; "16x20" vs "16 20 x" share 4 characters:
    # max(100 * (1 - 4/22), 100 * (1 - 6/14), 100 * (1 - 8/16)) = 81.8 -> 82
    assert token_set_ratio("16x20 inch", "16 x 20 inch") == 82
    assert token_set_ratio("", "black") == 0


def test_normalize_color_takes_the_first_colour_of_the_list():
    assert normalize_color("a01#black") == "black"
    assert normalize_color("wine red") == "red"          # 'red' precedes 'wine' in WebShop's list
    assert normalize_color("machine wash") == "ash"      # a WebShop quirk: substring match
    assert normalize_color("16 inch") == "16 inch"


GOAL = {"query": "women's tops, tees & blouses", "product_category": "Clothing › Women › Tops › T-Shirts",
        "name": "Slim Fit Cotton Shirt", "attributes": ["slim fit", "machine wash"],
        "goal_options": ["black", "large"], "price_upper": 30.0}
PRODUCT = {"query": GOAL["query"], "product_category": GOAL["product_category"], "name": "Slim Fit Cotton Shirt",
           "Title": "Slim Fit Cotton Shirt", "BulletPoints": ["soft"], "Description": "a shirt",
           "Attributes": ["slim fit", "machine wash"]}


def _with(**kw):
    return {**PRODUCT, **kw}


# (product, price, chosen options, goal changes, expected reward) -- each worked out by hand
CASES = [
    ("everything right", PRODUCT, 20.0, {"color": "black", "size": "large"}, {}, 5 / 5),
    ("price over the limit", PRODUCT, 35.0, {"color": "black", "size": "large"}, {}, 4 / 5),
    ("price at the limit", PRODUCT, 30.0, {"color": "black", "size": "large"}, {}, 5 / 5),
    ("one option wrong", PRODUCT, 20.0, {"color": "white", "size": "large"}, {}, 4 / 5),
    ("no option chosen", PRODUCT, 20.0, {}, {}, 3 / 5),
    ("colour normalised: a01#black is black", PRODUCT, 20.0, {"color": "a01#black", "size": "large"}, {}, 5 / 5),
    ("x-large token-set-matches large", PRODUCT, 20.0, {"color": "black", "size": "x-large"}, {}, 5 / 5),
    ("16x20 inch is not 16 x 20 inch (82)", PRODUCT, 20.0, {"size": "16x20 inch"}, {"goal_options": ["16 x 20 inch"]}, 3 / 4),
    ("attribute missing everywhere", _with(Attributes=["slim fit"]), 20.0, {"color": "black", "size": "large"}, {}, 4 / 5),
    ("attribute found in the title", _with(Attributes=["cotton"], Title="Slim Fit Shirt, Machine Wash"), 20.0,
     {"color": "black", "size": "large"}, {}, 5 / 5),
    ("attribute found in a bullet point", _with(Attributes=["slim fit"], BulletPoints=["Machine wash cold"]), 20.0,
     {"color": "black", "size": "large"}, {}, 5 / 5),
    ("attribute found in the description", _with(Attributes=["slim fit"], Description="easy machine wash"), 20.0,
     {"color": "black", "size": "large"}, {}, 5 / 5),
    ("attribute fuzzy: 'fit slim' is 'slim fit'", _with(Attributes=["fit slim", "machine wash"]), 20.0,
     {"color": "black", "size": "large"}, {}, 5 / 5),
    ("nothing matches but the type", _with(Attributes=["x"], Title="Cotton Shirt"), 99.0, {}, {}, 0 / 5),
    ("goal without options", PRODUCT, 20.0, {"color": "red"}, {"goal_options": []}, 3 / 3),
    ("goal options as a dict (synthetic goals)", PRODUCT, 20.0, {"size": "large"}, {"goal_options": {"size": "large"}}, 4 / 4),
    ("extra chosen options cost nothing", PRODUCT, 20.0, {"color": "black", "size": "large", "fit": "petite"}, {}, 5 / 5),
    # r_type: the query differs from here on
    ("other query, 2 categories shared", _with(query="q", product_category="Clothing › Women › Dresses"), 20.0,
     {"color": "black", "size": "large"}, {}, 5 / 5),
    ("other query and category, nouns 1/3 > 0.2", _with(query="q", product_category="x › y", name="Cotton Dress"),
     20.0, {"color": "black", "size": "large"}, {}, 5 / 5),
    ("other query and category, nouns 1/5 = 0.2: r_type 0.5",
     _with(query="q", product_category="x › y", name="Linen Dress"), 20.0, {"color": "black", "size": "large"},
     {"name": "Slim Linen Cotton Tee Shirt"}, 0.5 * 5 / 5),
    ("same query but nouns 1/11 < 0.1: r_type 0.1", _with(name="Shirt"), 20.0, {"color": "black", "size": "large"},
     {"name": "Shirt Alpha Beta Gamma Delta Epsilon Zeta Eta Theta Iota Kappa"}, 0.1 * 5 / 5),
    ("wrong type: no noun shared", _with(name="Garden Hose"), 20.0, {"color": "black", "size": "large"}, {}, 0.0),
    ("goal name without nouns: title_score 0.2, query decides", _with(name="Garden Hose"), 20.0,
     {"color": "black", "size": "large"}, {"name": "for the 2"}, 5 / 5),
]


@pytest.mark.parametrize("name,product,price,options,goal_changes,expected", CASES, ids=[c[0] for c in CASES])
def test_reward_hand_computed(name, product, price, options, goal_changes, expected):
    reward, info = get_reward(product, {**GOAL, **goal_changes}, price, options)
    assert reward == pytest.approx(expected), info


def test_there_are_at_least_20_reward_cases():
    assert len(CASES) >= 20


def test_title_nouns_against_recorded_spacy():
    """scripts/webshop_nouns.py measured our stand-in against en_core_web_sm; keep at least that agreement."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("wn", Path(__file__).parents[1] / "scripts/webshop_nouns.py")
    wn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wn)
    record = json.loads((Path(__file__).parent / "data/webshop_spacy_nouns.json").read_text())
    got = wn.compare(record)
    assert got["same_r_type"] >= 34 and got["identical_noun_sets"] >= 11 and got["mean_jaccard"] >= 0.9
    assert title_nouns("Women's Slim-Fit T-Shirt, 2 Pack") == ["women", "slim", "fit", "t", "shirt", "pack"]


def test_type_reward_parts():
    t = type_reward({"query": "a", "product_category": "A › B › C", "name": "Red Shoe"},
                    {"query": "b", "product_category": "A › B", "name": "Blue Shoe Box"})
    assert t == {"r_type": 1.0, "query_match": False, "category_match": True, "title_score": 1 / 3}


# ---------------------------------------------------------------------------------------------
# catalogue

def test_generator_is_deterministic(tmp_path, webshop_dir):
    data_dir = webshop_dir
    again = generate.write(tmp_path, n_products=48, seed=2)
    for f in ("items_shuffle.json", "items_ins_v2.json", "items_human_ins.json"):
        assert (again / f).read_bytes() == (data_dir / f).read_bytes()


def test_catalogue_reads_webshop_schemas(webshop_dir):
    data_dir = webshop_dir
    cat = load_catalogue(data_dir)
    assert len(cat.products) == 48 and len(cat.goals) == 48
    raw = json.loads((data_dir / "items_shuffle.json").read_text())
    assert {"asin", "name", "full_description", "small_description", "pricing", "images", "category", "query",
            "product_category", "customization_options"} <= set(raw[0])
    for g in cat.goals:      # every limit lies above the target's price, as WebShop draws it
        assert cat.prices[g["asin"]] < g["price_upper"] and g["instruction_text"].endswith(
            f", and price lower than {g['price_upper']:.2f} dollars")
        assert set(g["attributes"]) <= set(cat.by_asin[g["asin"]]["Attributes"])
    # option values are lowercased and '/' becomes ' | ' (the yoga mats' "1/4 Inch")
    values = [v for p in cat.products for vs in p["options"].values() for v in vs]
    assert all(v == v.lower() and "/" not in v for v in values) and "1 | 4 inch" in values
    # the goal order is WebShop's: random.seed(233); random.shuffle(goals)
    unshuffled = sorted(cat.goals, key=lambda g: [p["asin"] for p in cat.products].index(g["asin"]))
    random.Random(233).shuffle(unshuffled)
    assert [g["asin"] for g in unshuffled] == [g["asin"] for g in cat.goals]


def test_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="lumos.envs.webshop.generate"):
        load_catalogue(tmp_path)


# ---------------------------------------------------------------------------------------------
# pages, sessions, text observations

def test_url_literals_are_parsed_not_run():
    assert parse_keywords(str(["red", "men's"])) == ["red", "men's"]
    assert parse_keywords("red+shoe") == ["red", "shoe"]
    assert parse_literal(str({"color": "black"}), dict) == {"color": "black"}
    assert parse_literal("__import__('os').system('x')", dict) is None
    assert parse_literal("[1, 2]", list) is None and parse_literal("[" * 5000, list) is None


def test_episode_through_every_page(webshop_shop):
    shop = webshop_shop
    goal = shop.cat.goals[0]
    b = Browser(InProcess(shop), "t-fixed_0")
    obs = b.reset()
    assert obs == f"WebShop [SEP] Instruction: [SEP] {goal['instruction_text']} [SEP] Search"
    assert b.instruction == goal["instruction_text"]
    obs, reward, done, info = b.step("search[" + goal["query"] + "]")
    assert info == {} and not done and obs.startswith(f"Instruction: [SEP] {goal['instruction_text']} [SEP] Back to Search [SEP] Page 1 (Total results: ")
    assert b.clickables[:2] == ["back to search", "next >"] and len(b.clickables) == 2 + len(b.page.products)
    asin, title, price = b.page.products[0]
    assert f" [SEP] {asin} [SEP] {title} [SEP] {price}" in obs and asin.lower() in b.clickables
    b.step("click[next >]")
    assert b.page.texts[3].startswith("Page 2") and b.clickables[:3] == ["back to search", "< prev", "next >"]
    b.step("click[< prev]")
    assert b.page.texts[3].startswith("Page 1")
    b.step("click[back to search]")
    assert b.observation.startswith("WebShop [SEP] Instruction:")
    # straight to the target: its page, options, sub pages, Buy Now
    b.step("search[" + shop.cat.by_asin[goal["asin"]]["Title"] + "]")
    assert b.page.products[0][0] == goal["asin"]
    b.step(f"click[{goal['asin'].lower()}]")
    product = shop.cat.by_asin[goal["asin"]]
    option_values = [v for vs in product["options"].values() for v in vs]
    assert b.clickables == ["back to search", "< prev", "description", "features", "reviews", "buy now"] + option_values
    for o in goal["goal_options"]:
        assert b.step(f"click[{o}]")[3] == {}
    b.step("click[features]")
    assert b.observation.endswith(" [SEP] ".join(product["BulletPoints"]))
    b.step("click[< prev]")
    for o in goal["goal_options"]:      # the chosen options survive the sub page
        assert f'value="{o}"' in shop.handle("GET", b.url).html.split(f'value="{o}"')[0] + f'value="{o}"'
    obs, reward, done, info = b.step("click[buy now]")
    assert done and reward == 1.0 and b.reward == 1.0
    assert shop.sessions["t-fixed_0"]["reward"] == 1.0
    assert b.step("click[back to search]")[3]["error"].startswith("the session is over")


def test_invalid_actions_change_nothing(webshop_shop):
    shop = webshop_shop
    b = Browser(InProcess(shop), "t-fixed_1")
    b.reset()
    before = b.observation
    for action in ("click[buy now]", "click[search]", "jump[x]", "search[]", "nonsense", "search[" + "a" * 3000 + "]"):
        obs, reward, done, info = b.step(action)
        assert obs == before and reward == 0.0 and not done and info["error"]


def test_bad_urls_are_4xx(webshop_shop):
    shop = webshop_shop
    shop.handle("GET", "/t-fixed_2")
    assert shop.handle("GET", "/").status == 303
    assert shop.handle("GET", "/nope/a/b").status == 404
    assert shop.handle("GET", "/search_results/unknown/x/1").status == 404
    assert shop.handle("GET", "/search_results/t-fixed_2/x/0").status == 400
    assert shop.handle("GET", "/item_page/t-fixed_2/NOPE/x/1/{}").status == 404
    assert shop.handle("GET", "/item_page/t-fixed_2/" + shop.cat.products[0]["asin"] + "/x/1/{1: 2}").status == 400
    assert shop.handle("GET", f"/fixed_{len(shop.cat.goals)}").status == 404


def test_parse_reads_webshop_shaped_html():
    html = ('<div id="instruction-text"><h4>Instruction: <br>find a mug</h4></div>'
            '<form method="post" action="/s"><button type="submit" class="btn btn-success">Back to Search</button></form>'
            '<h4 class="product-asin"><a class="product-link" href="/item_page/s/B01/x/1/%7B%7D">B01</a></h5>'
            '<h4 class="product-title">Blue &amp; White Mug</h5><h5 class="product-price">$9.0</h6>'
            '<script>var x = "<b>not text</b>";</script><!-- hidden -->'
            '<input type="radio" name="color" value="blue" data-url="/item_page/s/B01/x/1/%7B%27color%27%3A%20%27blue%27%7D">')
    page = pages.parse(html)
    assert page.instruction == "find a mug"
    assert page.observation == "Instruction: [SEP] find a mug [SEP] Back to Search [SEP] B01 [SEP] Blue & White Mug [SEP] $9.0"
    assert list(page.clickables) == ["back to search", "b01", "blue"]
    assert page.clickables["b01"].kind == "link" and page.clickables["back to search"].url == "/s"
    assert page.products == [("B01", "Blue & White Mug", "$9.0")]
