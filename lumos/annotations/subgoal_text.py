"""A GSM8K solution sentence -> the natural-language subgoal the planner learns to write.

The paper's subgoals say *what* is computed, never the value or the arithmetic
("Subgoal 2: Calculate the money she makes every day at the farmers' market."). A GSM8K sentence
says what, arithmetic and value at once; we cut it around its (last) calculation mark:

    Natalia sold 48/2 = <<48/2=24>>24 clips in May.
    ^clause      ^arithmetic (dropped)  ^noun ^rest          -> "Calculate how many clips Natalia sold in May."

and fill one of a few templates:
    money ($ before the value, or 'dollars')      -> Calculate how much money <clause> <rest>
    a noun after the value                         -> Calculate how many <noun> <clause> <rest>
    'There are 84 pages left'                      -> Calculate the number of <noun> <rest>
    '<subject> is $20' (no noun)                   -> Calculate <subject> <rest>
    '<n> years old'                                -> Calculate how old <clause> <rest>
    '<n>%'                                         -> Calculate what percentage <clause> <rest>
A leading condition ('If he works 10 hours, he earns ...') moves to the end; discourse words
('So', 'Thus', 'Therefore', 'This means') are dropped; 'X is 25 feet because 5 x 5 = <<..>>25' uses the
clause before 'because'. Plain heuristics, no NLP library: deterministic and tested on real rows.
"""
import re

MARK = re.compile(r"<<([^<>]*)>>")
# the written-out arithmetic just before a mark: numbers, operators, $, %, '=', 'x', units between numbers
_MATH_TAIL = re.compile(r"(?:[\s$€£\d.,()+\-*/×%=:–]|\bx\b|(?<=\d)\s?[a-zA-Z]+(?=\s*[-+*/×x)=–]))*$")
_VALUE_HEAD = re.compile(r"^\s*\$?\s*-?[\d,]*\.?\d+")
_DISCOURSE = re.compile(r"^(?:(?:so|thus|hence|therefore|then|now|finally|next|first|second|third|lastly|"
                        r"(?:this|that|which) means(?: that)?|this is|and|but|also|overall|in all|all in all|"
                        r"altogether|combined|in total|in the end|in conclusion)\b[,:]?\s*)+", re.I)
_MID_SPLIT = re.compile(r"(?:,\s*(?:so|then|thus|therefore|hence|which means|meaning|and so)\b|\s(?:so|then|"
                        r"thus|therefore|which means|that means|this means)\s(?=\w))\s*", re.I)
_CONDITION = re.compile(r"^(if|when|since|because|as|after|before|given|with|without|once|while|for|in|on|at|"
                        r"from|of|during|to|by|working|adding|subtracting|combining|including|using)\b", re.I)
_REASON = re.compile(r"\s(?:because|since|as)\s+[^<]*$")
_COPULA = re.compile(r"\s+(is|are|was|were|will be|would be|be|equals|equal|comes to|come to|makes|"
                     r"amounts to|totals?)$", re.I)
_THERE = re.compile(r"^(there|here)\s+(is|are|was|were|will be|would be|would have been|will have been)$", re.I)
_TOTAL_TAIL = re.compile(r",?\s*\b(?:(for|at|with|of|to) )?(a total of|in total|total of|an? (?:total|sum) of|"
                         r"the total of|total)$", re.I)
_HAS_A = re.compile(r"^(.+?) (?:has|had|have|will have|would have) (?:a|an|the) ([a-z ]+?) of$", re.I)
_BRINGING = re.compile(r"^(.+?),? (?:bringing|making|raising|lowering|reducing|increasing|putting|taking) (.+?) "
                       r"(?:up |down )?to$", re.I)
_EMPTY_CLAUSE = re.compile(r"^(that's|that’s|that is|this is|which is|it is|it's|it’s|which|that|this|"
                           r"that means|this means|which means|that would be|this would be|so)$", re.I)
# a subject that names a quantity: 'The total number of bars left in the box was' -> use it as the what
_QUANTITY = re.compile(r"\b(number|total|amount|cost|price|sum|difference|average|rate|area|perimeter|volume|"
                       r"weight|length|distance|speed|value|percentage|ratio|profit|income|salary|bill|budget|"
                       r"fee|score|height|width|age|capacity|combined|remainder|discount|savings|change)\b", re.I)
_STOP = set("in on at for from to per each every with by after before since than that which who "
            "when if because as and or but so while during into onto of left remaining altogether "
            "total overall now today yesterday tomorrow all together combined".split()) | {"the", "a"}
_ADJ = {"more", "fewer", "less", "additional", "extra", "new", "total", "other", "remaining", "full", "whole",
        "square", "cubic", "empty", "free", "red", "blue", "green", "white", "black", "small", "large", "big"}
_LOWER_FIRST = set("the a an he she it they we you his her its their our my there this that these those each "
                   "every all one both some half twice she's he's it's there's two three four five six seven eight nine ten "
                   "eleven twelve twenty if when since after before with for in on at".split())
_MONEY = {"dollars", "dollar", "bucks"}


def _clean(s: str) -> str:
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s+([,.;:!?%])", r"\1", s)
    return s.strip(" ,;:-–")


def _lower_first(s: str) -> str:
    w = s.split(" ", 1)[0]
    return s[:1].lower() + s[1:] if w.lower() in _LOWER_FIRST else s


def _clause(pre: str) -> tuple[str, str]:
    """Text before the arithmetic -> (clause, condition moved to the end)."""
    pre = _MATH_TAIL.sub("", pre)
    pre = re.sub(r"[\$€£]\s*$", "", pre).strip()
    parts = _MID_SPLIT.split(pre)
    cond = ""
    if len(parts) > 1:
        head, pre = " ".join(parts[:-1]), parts[-1]
        if _CONDITION.match(head.strip()) and len(head.split()) <= 14:
            cond = head
    pre = _DISCOURSE.sub("", pre.strip())
    pre = re.sub(r",?\s*(?:that is|which is|that's|that’s|or)$", "", pre)
    m = re.match(r"^([^,]{3,}),\s+(.+)$", pre)
    if m and _CONDITION.match(m.group(1)) and not re.search(r"\d\s*$", m.group(1)):
        cond2, pre = m.group(1), _DISCOURSE.sub("", m.group(2))
        cond = cond2 if not cond else cond
    cond = _clean(cond)
    if cond and (len(cond.split()) > 14 or not re.search(r"[a-z]", cond)):
        cond = ""
    pre = _clean(pre)
    if _EMPTY_CLAUSE.match(pre):
        pre = ""
    return pre, cond[:1].lower() + cond[1:]


def _noun(post: str) -> tuple[str, str]:
    """Text after the value -> (noun phrase, rest). 'clips in May.' -> ('clips', 'in May')."""
    post = _clean(re.split(r"(?<=[a-z)])[.!?](\s|$)", post.lstrip(" .,;:!?"), maxsplit=1)[0])
    words = post.split(" ") if post else []
    noun = []
    for i, w in enumerate(words):
        lw = w.lower().strip(",;:")
        if lw == "of" and noun and i + 1 < len(words) and re.match(r"^[a-z]{3,}$", words[i + 1]) \
                and words[i + 1] not in _STOP:
            noun += [w, words[i + 1]]                         # 'bags of gravel', 'inches of rain'
            break
        if (lw in _STOP and not (lw in _ADJ and not noun)) or not re.match(r"^[\w$'/-]+[,;:]?$", w):
            break
        noun.append(w)
        if w.endswith((",", ";", ":")) or len(noun) == 3 and lw not in _ADJ:
            break
    noun_s = _clean(" ".join(noun))
    rest = _clean(" ".join(words[len(noun):]))
    return noun_s, rest


def subgoal_text(sentence: str, question: str = "", hide: list[str] = ()) -> str | None:
    """The subgoal (without 'Subgoal k: ') for the calculation(s) in `sentence`.

    `hide`: numbers the text must not state (the subgoal's own value). A moved condition that
    states one is left out; None when the text would still give a hidden number away."""
    for keep_condition in (True, False):
        text = _subgoal(sentence, keep_condition)
        if not set(_numbers(text)) & set(_numbers(" ".join(hide))):
            return text
    return None


def _numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?|(?<![\w.])\.\d+", text)]


def _subgoal(sentence: str, keep_condition: bool) -> str:
    marks = list(MARK.finditer(sentence))
    if not marks:
        raise ValueError(f"no calculation mark in {sentence!r}")
    last = marks[-1]
    start = marks[-2].end() if len(marks) > 1 else 0
    pre, post = sentence[start:last.start()], sentence[last.end():]
    if len(marks) > 1 and not re.search(r"[A-Za-z]{3,}", _MATH_TAIL.sub("", pre)):
        pre = sentence[:marks[0].start()]                     # 'X has 2*3=<<>>6 and 6+1=<<>>7 apples'
    money = bool(re.search(r"\$\s*$", pre))
    pct = post.lstrip().startswith("%")
    post = _VALUE_HEAD.sub("", post).lstrip("% ")
    post = post.split("<<")[0]                                # never read into the next calculation
    reason = _REASON.search(" " + pre)
    if reason and not re.search(r"[A-Za-z]{3,}", post) and len(pre) - len(reason.group(0)) > 8:
        # 'The painting is 25 square feet because 5 x 5 = <<5*5=25>>25': cut the stated value out
        head = pre[:len(pre) - len(reason.group(0)) + 1]
        value = last.group(1).rsplit("=", 1)[-1].strip()
        m = re.search(r"(\$?)\s*" + re.escape(_fmt_like(value)) + r"(?![\d.])(%?)", head) or \
            re.search(r"(\$?)\s*" + re.escape(value) + r"(?![\d.])(%?)", head)
        if m:
            pre, post = head[:m.start()], head[m.end():]
            money, pct = bool(m.group(1)), bool(m.group(2))
        else:
            pre = head
    clause, cond = _clause(pre)
    cond = cond if keep_condition else ""
    noun, rest = _noun(post)
    if noun.lower() in _MONEY:
        money, noun = True, ""
    tail = _clean(" ".join(x for x in (rest, cond) if x))

    if money and noun.lower() in ("more", "less", "extra", "additional", "fewer"):
        noun, more = "", " " + noun.lower()
    else:
        more = ""
    content = [w for w in re.findall(r"[A-Za-z]{2,}", clause) if w.lower() not in ("of", "is", "the", "and", "to")]
    if not content and not noun and re.search(r"\d", pre):
        # '15% of $80 = (15/100)*$80 = <<..>>12': nothing but arithmetic; name the first written calculation
        first = _clean(re.split(r"=", MARK.sub("", pre))[0])
        if re.search(r"[A-Za-z]{2,}", first):
            return "Calculate " + first.rstrip(".") + "."
    total = _TOTAL_TAIL.search(clause)
    if total:
        clause = _clean(clause[:total.start()])
        if money and total.group(1) and clause:
            return "Calculate " + _clean(f"the total cost when {_lower_first(clause)} {tail}").rstrip(".") + "."
        tail = _clean("in total " + tail) if "total" not in tail else tail
    has_a, bringing = _HAS_A.match(clause), _BRINGING.match(clause)
    if has_a and not noun:
        return "Calculate " + _clean(f"the {has_a.group(2)} of {_lower_first(has_a.group(1))} {tail}") + "."
    if bringing and not noun:
        return "Calculate " + _clean(f"{_lower_first(bringing.group(2))} when {_lower_first(bringing.group(1))} "
                                     f"{tail}").rstrip(".") + "."
    subj = _COPULA.search(clause)
    clause_l = _lower_first(clause)
    subject = clause[:subj.start()] if subj else ""
    if subj and _QUANTITY.search(subject) and len(subject.split()) >= 2 and not _THERE.match(clause):
        text = f"{_lower_first(subject)} {tail}"              # 'The total number of bars left ... was'
    elif _THERE.match(clause) and noun:
        text = f"the number of {noun} {tail}"
    elif noun.lower() in ("years", "year") and rest.lower().startswith("old"):
        text = f"how old {clause_l} {_clean(rest[3:])} {cond}"
    elif pct:
        text = f"what percentage {noun} {clause_l} {tail}" if clause else f"the percentage {noun} {tail}"
    elif subj and not noun and len(clause[:subj.start()].split()) >= 2:
        text = f"{_lower_first(clause[:subj.start()])} {tail}"
    elif money:
        text = f"how much{more} money {clause_l} {tail}" if clause else f"the amount of{more} money {tail}"
    elif noun and clause:
        text = f"how many {noun} {clause_l} {tail}"
    elif noun:
        text = f"the number of {noun} {tail}"
    elif clause:
        text = f"how much {clause_l} {tail}" if not subj else f"the value of {clause_l} {tail}"
    else:
        expr = last.group(1).rsplit("=", 1)[0]
        text = f"the result of {expr}"
    text = _clean(text).rstrip(".!?,")
    return "Calculate " + text + "."


def _fmt_like(value: str) -> str:
    """'1148' -> '1,148' (how the sentence may spell a value it states)."""
    try:
        return f"{int(value):,}"
    except ValueError:
        return value
