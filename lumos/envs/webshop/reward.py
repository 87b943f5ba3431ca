"""WebShop's reward for a purchase (Yao et al. 2022, web_agent_site/engine/goal.py), written out by hand.

    reward = (attribute matches + option matches + [price <= limit]) / (goal attributes + goal options + 1) * r_type

- an attribute matches when some attribute of the bought product is a fuzzy token-set match (score > 85)
  of it, or it occurs verbatim in the lowercased title, bullet points or description;
- an option matches when some chosen option is a fuzzy token-set match of it, both first reduced to
  their first colour word (normalize_color);
- r_type (is it the right kind of product?) is 1 when the product's search query equals the goal's, or
  at least two of their category breadcrumbs agree, or more than 20% of the goal title's nouns appear
  in the bought title; else 0.5. It drops to 0.1 when under 10% of the nouns appear and to 0 when none do.

Two pieces differ from WebShop's code, both documented where they live:
- ``token_set_ratio`` is thefuzz's (on rapidfuzz), reimplemented: same processing, same integer score
  (tests compare it with rapidfuzz on thousands of pairs).
- WebShop finds a title's nouns with spaCy's part-of-speech tagger (en_core_web_sm: tokens tagged
  NOUN or PROPN). We use no tagger: ``title_nouns`` keeps a title's content words (see its docstring).
  README "WebShop" gives the measured difference on constructed titles.
"""
import re

# ---------------------------------------------------------------------------------------------
# fuzzy matching: thefuzz.fuzz.token_set_ratio

_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)
_LATIN1 = {i: None for i in range(128, 256)}   # thefuzz's force_ascii deletes exactly these code points


def full_process(s) -> str:
    """thefuzz's preprocessing: drop characters 128-255, non-alphanumerics to spaces, lowercase, strip."""
    s = str(s).translate(_LATIN1)
    return _NON_ALNUM.sub(" ", s).lower().strip()


def _lcs(a: str, b: str) -> int:
    """Length of the longest common subsequence (the indel distance is len(a) + len(b) - 2 * lcs)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b):
            cur.append(prev[j] + 1 if ca == cb else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _ratio(a: str, b: str) -> float:
    """rapidfuzz's normalised indel similarity in [0, 100]."""
    total = len(a) + len(b)
    return 100.0 if total == 0 else 100.0 * 2 * _lcs(a, b) / total


def token_set_ratio(s1, s2) -> int:
    """thefuzz.fuzz.token_set_ratio: compare the sorted common words with each side's sorted
    common + leftover words and take the best score, rounded to an integer (0 for an empty side)."""
    a, b = set(full_process(s1).split()), set(full_process(s2).split())
    if not a or not b:
        return 0
    common, only_a, only_b = sorted(a & b), sorted(a - b), sorted(b - a)
    if common and (not only_a or not only_b):
        return 100
    sect, da, db = " ".join(common), " ".join(only_a), " ".join(only_b)
    sep = 1 if sect else 0
    sect_a, sect_b = len(sect) + sep + len(da), len(sect) + sep + len(db)
    # the two "common + leftover" strings share the prefix "common ", so their indel distance is da vs db
    best = 100.0 * (1 - (len(da) + len(db) - 2 * _lcs(da, db)) / (sect_a + sect_b))
    if sect:
        best = max(best, 100.0 * (1 - (sep + len(da)) / (len(sect) + sect_a)),
                   100.0 * (1 - (sep + len(db)) / (len(sect) + sect_b)))
    return int(round(best))


# ---------------------------------------------------------------------------------------------
# options: colours are compared by their first colour word ("a01#black" -> "black")

COLOR_SET = (
    "alabaster apricot aqua ash asphalt azure banana beige black blue blush bordeaux bronze brown burgundy camel "
    "camo caramel champagne charcoal cheetah chestnut chocolate christmas coffee cognac copper coral cranberry "
    "cream crystal dark denim eggplant elephant espresso fuchsia gold granite grape graphite grass gray green grey "
    "heather indigo ivory ivy khaki lavender lemon leopard light lilac lime magenta maroon mauve merlot midnight "
    "mint mocha multicolor mushroom mustard natural navy nude olive orange peach pewter pink plum purple rainbow "
    "red rose royal rust sand sapphire seashell silver skull slate steel stone stonewash sunflower tan taupe teal "
    "tiger turquoise violet walnut wheat white wine yellow").split()   # WebShop's list, in its order


def normalize_color(text: str) -> str:
    """The first colour of COLOR_SET (in that list's order) contained in `text`, else `text` itself."""
    return next((c for c in COLOR_SET if c in text), text)


# ---------------------------------------------------------------------------------------------
# r_type: is the bought product the goal's kind of product?

# closed-class words (what spaCy tags ADP, CCONJ, SCONJ, DET, PRON, AUX, PART): never nouns
_FUNCTION_WORDS = set(
    "a an the and or nor but so yet of for with without within in on at to from by as into onto over under "
    "up down out off per via about above after against along among around before behind below beneath beside "
    "between beyond during except inside near outside since through throughout toward towards until upon "
    "is are be been being was were am do does did has have had can could will would shall should may might must "
    "it its this that these those your you yours our ours we us my me mine i he him his she her hers they them "
    "their theirs who whom whose which what whatever whichever each every either neither some any no all both "
    "s if than then not".split())
_WORD = re.compile(r"[a-z0-9]+")


def title_nouns(title: str) -> list[str]:
    """Stand-in for WebShop's spaCy tagging of a product name (tokens tagged NOUN or PROPN, lowercased).
    Product names are written in Title Case, and there spaCy's small English model tags nearly every
    capitalised word PROPN, adjectives included ("Heat Resistant Clip" -> PROPN PROPN PROPN). So we keep
    every word (split at hyphens and apostrophes, as spaCy's tokenizer does) except closed-class function
    words, and words with a digit (sizes, counts: spaCy's NUM). Measured against
    en_core_web_sm on constructed names by scripts/webshop_nouns.py (README "WebShop")."""
    return [w for w in _WORD.findall(str(title).lower())
            if w not in _FUNCTION_WORDS and not any(c.isdigit() for c in w)]


def type_reward(purchased: dict, goal: dict, nouns=title_nouns) -> dict:
    """r_type and its parts. `purchased` is a product ({query, product_category, name}), `goal` a goal
    ({query, product_category, name}: the target product's). `nouns` extracts a title's nouns."""
    query_match = purchased["query"] == goal["query"]
    cats_p = {x.strip() for x in purchased["product_category"].split("›")}
    cats_g = {x.strip() for x in goal["product_category"].split("›")}
    category_match = len(cats_p & cats_g) >= 2
    have, want = set(nouns(purchased["name"])), nouns(goal["name"])
    title_score = 0.2 if not want else len(have & set(want)) / len(want)
    r_type = 1.0 if (query_match or category_match or title_score > 0.2) else 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {"r_type": r_type, "query_match": query_match, "category_match": category_match,
            "title_score": title_score}


# ---------------------------------------------------------------------------------------------

def attribute_matches(purchased: dict, goal_attributes: list[str]) -> int:
    """How many goal attributes the product has: fuzzy match (> 85) against its attribute list, else a
    verbatim occurrence in its lowercased Title, BulletPoints or Description."""
    n = 0
    text = [purchased["Title"].lower(), " ".join(purchased["BulletPoints"]).lower(), purchased["Description"].lower()]
    for g in goal_attributes:
        if any(token_set_ratio(p, g) > 85 for p in purchased["Attributes"]) or any(g in t for t in text):
            n += 1
    return n


def option_matches(chosen: list[str], goal_options: list[str]) -> int:
    """How many goal options some chosen option matches (fuzzy > 85, after normalize_color)."""
    chosen = [normalize_color(o) for o in chosen]
    return sum(any(token_set_ratio(c, normalize_color(g)) > 85 for c in chosen) for g in goal_options)


def get_reward(purchased: dict, goal: dict, price: float, options: dict, nouns=title_nouns) -> tuple[float, dict]:
    """WebShop's reward for buying `purchased` at `price` with `options` ({name: value}) against `goal`
    ({attributes, goal_options, price_upper, query, product_category, name}). Returns (reward, info)."""
    goal_options = list(goal["goal_options"].values()) if isinstance(goal["goal_options"], dict) else list(goal["goal_options"])
    t = type_reward(purchased, goal, nouns)
    r_price = price <= goal["price_upper"]
    n_attr = attribute_matches(purchased, goal["attributes"])
    n_opt = option_matches(list(options.values()), goal_options)
    total = len(goal["attributes"]) + len(goal_options) + 1
    reward = (n_attr + n_opt + r_price) / total * t["r_type"]
    info = {**t, "r_att": n_attr / max(len(goal["attributes"]), 1), "r_price": bool(r_price),
            "r_option": (n_opt / len(goal_options)) if goal_options else None,
            "n_attr": n_attr, "n_opt": n_opt, "denominator": total}
    return reward, info
