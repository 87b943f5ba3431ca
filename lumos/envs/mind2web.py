"""Mind2Web's recorded pages: candidate elements of a cleaned_html snapshot, MindAct-style pruning,
and an offline page that replays a task's steps for the web tools.

Mind2Web stores each step's page as `cleaned_html`, well-formed XML in which every element carries a
`backend_node_id` and text sits in `<text>` elements; underscores replace dashes in attribute names
(`aria_label`, `input_value`). The candidate elements of a step are `pos_candidates` (the gold target)
and `neg_candidates`, named by backend_node_id.

    elements = step_elements(action)            # -> [Element(id="135", tag="select", text="select travelers ..."), ...]
    prune(action["cleaned_html"], ["135"])      # -> "(html (body (form ... (select id=135 number of travelers ..."

`RecordedPage` plays one task offline: step k offers step k's candidates, and the k-th web action
records its prediction (element, operation, value) and moves on to step k+1. Pages never change with
what the agent did (teacher forcing, as Mind2Web and Lumos evaluate).
"""
import json
import re
import xml.etree.ElementTree as ET

from lumos.tools import ToolError
from lumos.tools.web import Element, pick_option

# MindAct's salient attributes, in the order its element descriptions list them
SALIENT = ("role", "aria_role", "type", "alt", "aria_description", "aria_label", "label", "title", "name",
           "text_value", "value", "placeholder", "input_checked", "input_value", "option_selected")
_DULL = {"hidden", "none", "presentation", "null", "undefined", "true", "false"}
MAX_WORDS = 100


def parse_html(cleaned_html: str) -> ET.Element:
    """The snapshot as an element tree (XML; no entity definitions are expanded beyond the standard ones)."""
    if "<!ENTITY" in cleaned_html:
        raise ValueError("cleaned_html defines entities; refusing to parse it")
    return ET.fromstring(cleaned_html)


def visible_text(node: ET.Element) -> str:
    """All text under `node` (the <text> elements, or plain element text), whitespace collapsed."""
    parts = [t for t in node.itertext()]
    return " ".join(" ".join(parts).split())


def attribute_words(node: ET.Element) -> list[str]:
    """The salient attribute values of `node`, MindAct's order, without dull values, URLs or repeats."""
    out = []
    for a in SALIENT:
        v = " ".join((node.get(a) or "").split())
        if v and v.lower() not in _DULL and not v.startswith("http") and v not in out:
            out.append(v)
    if node.tag == "svg" and "icon" in (node.get("class") or ""):
        out += [c for c in node.get("class").split() if "icon" in c]
    return out


def element_of(node: ET.Element, positive: bool = False) -> Element:
    """An Element for the tools: text = tag, salient attributes, visible text (at most 100 words)."""
    label = visible_text(node)
    words = " ".join([node.tag] + attribute_words(node) + [label]).split()[:MAX_WORDS]
    options = [visible_text(o) for o in node.iter("option")] if node.tag == "select" else []
    return Element(id=node.get("backend_node_id", ""), tag=node.tag, text=" ".join(words),
                   label=" ".join(label.split()[:30]), options=options, positive=positive)


def _element_from_record(cand: dict, positive: bool) -> Element:
    """A candidate missing from the snapshot: described from its own `attributes` JSON."""
    try:
        attrs = json.loads(cand.get("attributes") or "{}")
    except ValueError:
        attrs = {}
    node = ET.Element(cand.get("tag", "div"), {k: str(v) for k, v in attrs.items() if isinstance(k, str)})
    node.set("backend_node_id", str(cand["backend_node_id"]))
    return element_of(node, positive)


def step_elements(action: dict, ranks: dict | None = None, top_k: int = 50) -> list[Element]:
    """The candidates of one Mind2Web step, in document order (so that no ranker tie favours the gold).
    ranks: MindAct's candidate ranks of this step {backend_node_id: rank}; when given, only candidates
    ranked below `top_k` are offered, as MindAct's second stage sees them."""
    tree = parse_html(action["cleaned_html"])
    order = {n.get("backend_node_id"): i for i, n in enumerate(tree.iter()) if n.get("backend_node_id")}
    nodes = {n.get("backend_node_id"): n for n in tree.iter() if n.get("backend_node_id")}
    out = []
    for positive, key in ((True, "pos_candidates"), (False, "neg_candidates")):
        for cand in action.get(key) or []:
            cid = str(cand["backend_node_id"])
            if ranks is not None and ranks.get(cid, top_k) >= top_k:
                continue
            out.append(element_of(nodes[cid], positive) if cid in nodes else _element_from_record(cand, positive))
    out.sort(key=lambda e: order.get(e.id, len(order)))
    return out


def prune(cleaned_html: str, keep_ids: list[str], max_depth: int = 5, max_children: int = 50,
          max_sibling: int = 3) -> str:
    """MindAct's pruned page as text: the candidates, their ancestors, up to `max_children` descendants
    within `max_depth` levels and `max_sibling` siblings either side; everything else is dropped.
    Nodes render as "(tag id=N attribute words text children)", `id=` only on candidates; a kept node
    with nothing of its own and at most one child is replaced by that child (as MindAct collapses them)."""
    root = parse_html(cleaned_html)
    parent = {c: p for p in root.iter() for c in p}
    keep_ids = [str(k) for k in keep_ids]
    by_id = {n.get("backend_node_id"): n for n in root.iter()}
    keep = set()
    for cid in keep_ids:
        node = by_id.get(cid)
        if node is None:
            continue
        keep.add(node)
        p = parent.get(node)
        while p is not None:
            keep.add(p)
            p = parent.get(p)
        keep.update(_descendants(node, max_depth)[:max_children])
        if node in parent:
            sibs = [s for s in parent[node] if s.tag != "text"]
            i = sibs.index(node)
            keep.update(sibs[max(0, i - max_sibling): i + max_sibling + 1])

    def render(node) -> str:
        if node.tag == "text":
            return " ".join((node.text or "").split())
        if node not in keep:
            return ""
        own = " ".join((node.text or "").split())
        kids = [r for r in (render(c) for c in node) if r]
        kids += [t for t in (" ".join((c.tail or "").split()) for c in node) if t]
        is_cand = node.get("backend_node_id") in keep_ids
        head = [node.tag] + ([f"id={node.get('backend_node_id')}"] if is_cand else []) + attribute_words(node)
        if not is_cand and not attribute_words(node) and not own and len(kids) <= 1 and node is not root:
            return kids[0] if kids else ""
        return "(" + " ".join(head + ([own] if own else []) + kids) + ")"
    return render(root)


def _descendants(node, max_depth: int, depth: int = 0) -> list:
    if depth > max_depth:
        return []
    out = []
    for c in node:
        out.append(c)
        out.extend(_descendants(c, max_depth, depth + 1))
    return out


class RecordedPage:
    """One Mind2Web task replayed offline. steps: per step, its candidate Elements.
    `predictions[k]` = {"element", "op", "value"} of the web action that acted on step k."""

    def __init__(self, steps: list[list[Element]]):
        self.steps, self.predictions = steps, []

    def candidates(self, op: str) -> list[Element]:
        k = len(self.predictions)
        if k >= len(self.steps):
            raise ToolError(f"the task has {len(self.steps)} steps and all were acted on")
        return self.steps[k]

    def act(self, op: str, element: Element, value: str) -> str:
        if op == "SELECT" and element.options:   # a <select> whose options the snapshot shows
            value = element.options[pick_option(element.options, value)]
        self.predictions.append({"element": element.id, "op": op, "value": value})
        what = f"[{element.tag}] {element.label or element.text}"[:100]
        return f"{op} {what}" + (f" -> {value}" if value else "")
