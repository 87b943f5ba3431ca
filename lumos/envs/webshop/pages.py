"""WebShop's pages: their URLs, their HTML (the structure of WebShop's templates) and a parser for them.

Routes, as in WebShop's Flask app (web_agent_site/app.py):

    /<session_id>                                                   search page (POST search_query= to search)
    /search_results/<session_id>/<keywords>/<page>                  10 results of the top 50
    /item_page/<session_id>/<asin>/<keywords>/<page>/<options>      options, price, Description/Features/Reviews, Buy Now
    /item_sub_page/<session_id>/<asin>/<keywords>/<page>/<sub_page>/<options>
    /done/<session_id>/<asin>/<options>                             the purchase and its reward

`keywords` is the Python list of search words and `options` the Python dict {option name: value},
written with str() as Flask's url_for does (each segment percent-quoted here, '/' included).

The HTML keeps what WebShop's agents read: ids `instruction-text`, `search_input`, `reward`, classes
`btn` (buttons), `product-link` (result ASINs), `product-title`, `product-price`, radio inputs named
after the option with a `data-url`, and every button inside the form it submits. `parse` turns any such
page (ours or WebShop's real server's) into its text observation in WebShop's text mode (visible
texts joined by " [SEP] ") and its clickables, keyed like WebShop's text environment: a button's text
lowercased, a result's ASIN lowercased, an option's value.
"""
import html
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote

PRODUCT_WINDOW = 10       # results per page
SEARCH_RETURN_N = 50      # results per search
END_BUTTON, NEXT_PAGE, PREV_PAGE, BACK_TO_SEARCH = "Buy Now", "Next >", "< Prev", "Back to Search"
SUB_PAGES = ("Description", "Features", "Reviews")


def seg(value) -> str:
    """One URL path segment: str(value) percent-quoted, '/' included."""
    return quote(str(value), safe="")


def index_url(sid: str) -> str:
    return f"/{seg(sid)}"


def results_url(sid: str, keywords: list, page: int) -> str:
    return f"/search_results/{seg(sid)}/{seg(keywords)}/{page}"


def item_url(sid: str, asin: str, keywords: list, page: int, options: dict) -> str:
    return f"/item_page/{seg(sid)}/{seg(asin)}/{seg(keywords)}/{page}/{seg(options)}"


def sub_page_url(sid: str, asin: str, keywords: list, page: int, sub_page: str, options: dict) -> str:
    return f"/item_sub_page/{seg(sid)}/{seg(asin)}/{seg(keywords)}/{page}/{seg(sub_page)}/{seg(options)}"


def done_url(sid: str, asin: str, options: dict) -> str:
    return f"/done/{seg(sid)}/{seg(asin)}/{seg(options)}"


# ---------------------------------------------------------------------------------------------
# rendering (every value escaped: titles and queries are data, never markup)

e = html.escape


def _page(body: str) -> str:
    return f"<!DOCTYPE html>\n<html>\n<head><title>WebShop</title></head>\n<body>\n{body}\n</body>\n</html>\n"


def _instruction(text: str, logo: bool = False) -> str:
    head = '<div id="logo"><h2>WebShop</h2></div>\n' if logo else ""
    return f'{head}<div id="instruction-text"><h4>Instruction:<br>{e(text)}</h4></div>'


def _button(action: str, label: str, cls: str = "btn btn-primary") -> str:
    return f'<form method="post" action="{e(action)}"><button type="submit" class="{cls}">{e(label)}</button></form>'


def render_search(sid: str, instruction: str) -> str:
    return _page(_instruction(instruction, logo=True) + f'''
<form id="form-buscar" method="post" action="{e(index_url(sid))}">
<input id="search_input" type="text" name="search_query" placeholder="Search..." required/>
<button class="btn btn-success" type="submit">Search</button>
</form>''')


def render_results(sid: str, instruction: str, keywords: list, page: int, products: list[dict], total: int) -> str:
    nav = [_button(index_url(sid), BACK_TO_SEARCH, "btn btn-success"), f"<h3>Page {page} (Total results: {total})</h3>"]
    if page > 1:
        nav.append(_button(results_url(sid, keywords, page - 1), PREV_PAGE))
    nav.append(_button(results_url(sid, keywords, page + 1), NEXT_PAGE))
    items = [f'''<div class="list-group-item searched-product">
<h4 class="product-asin"><a class="product-link" href="{e(item_url(sid, p["asin"], keywords, page, {}))}">{e(p["asin"])}</a></h4>
<h4 class="product-title">{e(p["Title"])}</h4>
<h5 class="product-price">{e(p["Price"])}</h5>
</div>''' for p in products]
    return _page(_instruction(instruction) + "\n" + "\n".join(nav) + "\n" + "\n".join(items))


def _item_header(sid, instruction, back_action) -> str:
    return (_instruction(instruction) + "\n" + _button(index_url(sid), BACK_TO_SEARCH, "btn btn-success") + "\n"
            + _button(back_action, PREV_PAGE))


def render_item(sid: str, instruction: str, product: dict, keywords: list, page: int, options: dict) -> str:
    asin, parts = product["asin"], []
    for name, values in product["options"].items():
        radios = []
        for i, v in enumerate(values):
            url = item_url(sid, asin, keywords, page, {**options, name: v})
            checked = " checked" if options.get(name) == v else ""
            radios.append(f'<input type="radio" id="radio_{e(name)}{i}" name="{e(name)}" value="{e(v)}" '
                          f'data-url="{e(url)}"{checked}>\n<label for="radio_{e(name)}{i}">{e(v)}</label>')
        parts.append(f'<div class="option"><h4>{e(name)}</h4>\n<div class="radio-toolbar">\n' + "\n".join(radios) + "\n</div></div>")
    subs = "\n".join(_button(sub_page_url(sid, asin, keywords, page, s, options), s) for s in SUB_PAGES)
    return _page(_item_header(sid, instruction, results_url(sid, keywords, page)) + "\n" + "\n".join(parts) + f'''
<h2>{e(product["Title"])}</h2>
<h4>Price: {e(product["Price"])}</h4>
<h4>Rating: {e(str(product["Rating"]))}</h4>
{subs}
{_button(done_url(sid, asin, options), END_BUTTON, "btn btn-lg purchase")}''')


def render_sub_page(sid: str, instruction: str, product: dict, keywords: list, page: int, sub_page: str,
                    options: dict) -> str:
    if sub_page == "Description":
        body = f'<p class="product-info">{e(product["Description"])}</p>'
    elif sub_page == "Features":
        body = "<ul>" + "".join(f'<li><p class="product-info">{e(b)}</p></li>' for b in product["BulletPoints"]) + "</ul>"
    else:   # Reviews
        body = "".join(f'<div class="review"><h4>"{e(str(r.get("title", "")))}"</h4><p><span>{e(str(r.get("score", "")))}</span></p>'
                       f'<p class="content">{e(str(r.get("body", "")))}</p></div>' for r in product.get("Reviews", []))
    back = item_url(sid, product["asin"], keywords, page, options)
    return _page(_item_header(sid, instruction, back) + f'\n<div name="{e(sub_page.lower())}">{body}</div>')


def render_done(sid: str, asin: str, options: dict, reward: float, info: dict) -> str:
    return _page(f'''<div id="thankyou"><h1>Thank you for shopping with us!</h1></div>
<div style="display:none"><h4 id="asin">asin<pre>{e(asin)}</pre></h4><h4 id="options">options<pre>{e(str(options))}</pre></h4>
<div id="reward_info"><pre>{e(str(info))}</pre></div></div>
<h3 id="reward">Your score (min 0.0, max 1.0)<pre>{reward}</pre></h3>''')


# ---------------------------------------------------------------------------------------------
# parsing

@dataclass
class Clickable:
    kind: str          # "button" (submits its form: POST action), "link" (GET href), "radio" (GET data-url)
    url: str
    name: str = ""     # a radio's option name


@dataclass
class Page:
    texts: list[str] = field(default_factory=list)                 # visible texts in document order
    clickables: dict[str, Clickable] = field(default_factory=dict)
    instruction: str = ""
    products: list[tuple[str, str, str]] = field(default_factory=list)   # results: (asin, title, price)
    reward: float | None = None
    has_search_bar: bool = False
    search_url: str = ""

    @property
    def observation(self) -> str:
        """WebShop's text-mode ('simple') observation: the visible texts joined by ' [SEP] '."""
        return " [SEP] ".join(self.texts)


_HIDDEN = {"style", "script", "head", "title", "meta"}
_VOID = {"input", "br", "img", "meta", "link", "hr"}


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page, self.stack, self.forms = Page(), [], []
        self.button = self.link = None     # (text parts, target) while inside one
        self.field = None                  # the id/class of the element whose text we are inside
        self.result: list | None = None
        self.buttons, self.links, self.radios = [], [], []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "form":
            self.forms.append(a.get("action", ""))
        elif tag == "button" and "btn" in classes:
            self.button = ([], self.forms[-1] if self.forms else "")
        elif tag == "a" and "product-link" in classes:
            self.link = ([], a.get("href", ""))
        elif tag == "input" and a.get("type") == "radio":
            self.radios.append((a.get("value", ""), Clickable("radio", a.get("data-url", ""), a.get("name", ""))))
        elif tag == "input" and a.get("id") == "search_input":
            self.page.has_search_bar, self.page.search_url = True, self.forms[-1] if self.forms else ""
        if tag not in _VOID:
            self.stack.append((tag, a.get("id", ""), classes))

    def handle_endtag(self, tag):
        if tag == "form" and self.forms:
            self.forms.pop()
        elif tag == "button" and self.button is not None:
            self.buttons.append(("".join(self.button[0]).strip().lower(), Clickable("button", self.button[1])))
            self.button = None
        elif tag == "a" and self.link is not None:
            asin = "".join(self.link[0]).strip()
            self.links.append((asin.lower(), Clickable("link", self.link[1])))
            self.page.products.append((asin, "", ""))
            self.link = None
        for i in range(len(self.stack) - 1, -1, -1):   # tolerate unclosed or mismatched tags
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if any(t in _HIDDEN for t, _, _ in self.stack):
            return
        for part in (self.button, self.link):
            if part is not None:
                part[0].append(data)
        text = data.strip()
        if not text:
            return
        self.page.texts.append(text)
        tags = {t for t, _, _ in self.stack}
        ids = {i for _, i, _ in self.stack}
        if "instruction-text" in ids and text != "Instruction:":
            self.page.instruction = (self.page.instruction + " " + text).strip()
        if "reward" in ids and "pre" in tags:
            try:
                self.page.reward = float(text)
            except ValueError:
                pass
        # WebShop closes its <h4 class="product-title"> with </h5>, so those elements nest: the innermost decides
        role = next((c for _, _, cs in reversed(self.stack) for c in cs if c in ("product-title", "product-price")), None)
        if self.page.products and role == "product-title":
            asin, _, price = self.page.products[-1]
            self.page.products[-1] = (asin, text, price)
        elif self.page.products and role == "product-price":
            asin, title, _ = self.page.products[-1]
            self.page.products[-1] = (asin, title, text)


def parse(text: str) -> Page:
    """A WebShop page's HTML -> Page. Clickables in WebShop's order: buttons and result links, then options."""
    p = _Parser()
    p.feed(text)
    p.close()
    for key, c in p.buttons + p.links:
        p.page.clickables.setdefault(key, c)   # WebShop's dict keeps the first of equal names
    for key, c in p.radios:
        p.page.clickables[key] = c
    return p.page
