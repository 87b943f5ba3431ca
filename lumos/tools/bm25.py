"""Okapi BM25: the one lexical ranker of the project.

QA's ParagraphRetrieve and KnowledgeQuery (offline corpus), WebShop's search and Mind2Web's element
ranking all rank with this class:

    bm = BM25(["the cat sat", "a dog barked"])
    bm.scores("cat")   -> [0.693..., 0]  (ln 2: one document in two holds "cat")
    bm.top("cat", 1)   -> [0]

score(q, d) = sum over query terms w in d of idf(w) * tf(w, d) * (k1 + 1) / (tf(w, d) + k1 * (1 - b + b * |d| / avgdl)),
idf(w) = ln(1 + (N - df(w) + 0.5) / (df(w) + 0.5)) (the non-negative variant Lucene uses).
"""
import math
import re
from collections import Counter

_WORD = re.compile(r"\w+")
_STOP = set("a an the of in on at to for and or is are was were be been by with as from that this it its "
            "what which who whom whose when where why how did do does has have had".split())


def words(text: str) -> list[str]:
    """Lowercased word tokens without the most common function words (BM25's terms)."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


class BM25:
    """Okapi BM25 over a fixed list of documents (k1=1.5, b=0.75, the usual defaults)."""

    def __init__(self, docs: list[str], k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.tfs = [Counter(words(d)) for d in docs]
        self.lens = [sum(tf.values()) for tf in self.tfs]
        self.avg_len = (sum(self.lens) / len(self.lens)) if self.lens else 0.0
        df = Counter(w for tf in self.tfs for w in tf)
        n = len(docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}

    def scores(self, query: str) -> list[float]:
        q = words(query)
        out = []
        for tf, length in zip(self.tfs, self.lens):
            norm = self.k1 * (1 - self.b + self.b * length / (self.avg_len or 1))
            out.append(sum(self.idf.get(w, 0.0) * tf[w] * (self.k1 + 1) / (tf[w] + norm) for w in q if w in tf))
        return out

    def top(self, query: str, k: int) -> list[int]:
        """Indices of the k best documents, best first (ties: earlier document first)."""
        s = self.scores(query)
        return sorted(range(len(s)), key=lambda i: (-s[i], i))[:k]
