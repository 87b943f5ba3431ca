"""A GSM8K solution sentence -> the natural-language subgoal the planner learns to write.

The paper's subgoals say *what* is computed, never the value or the arithmetic
("Subgoal 2: Calculate the money she makes every day at the farmers' market."). A GSM8K sentence
says what, arithmetic and value at once; we cut it around its (last) calculation mark:

    Natalia sold 48/2 = <<48/2=24>>24 clips in May.
    ^clause      ^arithmetic (dropped)  ^noun ^rest          -> "Calculate how many clips Natalia sold in May."

and fill one of a few templates:
    'First find the total time: 5 * 9 = ...'       -> Calculate the total time
    'Adults = 5 * $10 = $50'                        -> Calculate the amount of money for adults
    money ($ before the value, or 'dollars')      -> Calculate how much money <clause> <rest>
    a noun after the value                         -> Calculate how many <noun> <clause> <rest>
    'There are 84 pages left'                      -> Calculate the number of <noun> <rest>
    '<subject> is $20' (no noun)                   -> Calculate <subject> <rest>
    '<n> years old'                                -> Calculate how old <clause> <rest>
    '<n>%'                                         -> Calculate what percentage <clause> <rest>
    '... for a total of $50'                       -> Calculate the total cost when <clause>
A leading condition ('If he works 10 hours, he earns ...') moves to the end; discourse words
('So', 'Thus', 'Therefore', 'This means') are dropped; 'X is 25 feet because 5 x 5 = <<..>>25' uses the
clause before 'because'. Plain heuristics, no NLP library: deterministic and tested on real rows.
"""
import re

MARK = re.compile(r"<<([^<>]*)>>")
# the written-out arithmetic just before a mark: numbers, operators, $, %, '=', 'x', units between numbers
_MATH_TOKEN = re.compile(r"^[$€£\d.,()+\-*/×%=:–−]+$|^(?:x|times|plus|minus|equals|over)$")
_UNIT_WORD = re.compile(r"^[a-z][a-z'’/-]*[a-z]$|^[a-z]$")
_NOT_UNIT = set("so that is are was were the and then which he she it they we you his her its their this "
                "these those to for from with by at on in of if when since because as or but than".split())


_VALUE_HEAD = re.compile(r"^\s*\$?\s*-?[\d,]*\.?\d+")
_DISCOURSE = re.compile(r"^(?:(?:so|thus|hence|therefore|then|now|finally|next|first|second|third|lastly|"
                        r"(?:this|that|which) means(?: that)?|this is|and|but|also|overall|in all|all in all|"
                        r"altogether|combined|in total|in the end|in conclusion)\b[,:]?\s*)+", re.I)
_MID_SPLIT = re.compile(r"(?:,?\s*(?:and )?(?:so|then|thus|therefore|hence|which means|meaning|and so)\b,?|\s(?:so|"
                        r"then|thus|therefore|which means|that means|this means)\s(?=\w))\s*", re.I)
_VERB_ONLY = re.compile(r"^(?:is|are|was|were|will be|would be|has|have|had|will have|costs?|weighs?|gets?|"
                        r"makes?|needs?|earns?)$", re.I)
_SUBJECT = re.compile(r"^(.+?)\s+(?:was|is|were|are|has|had|will|would|can|could|did|does|do|got|gets)\b", re.I)
_CONDITION = re.compile(r"^(if|when|since|because|as|after|before|given|with|without|once|while|for|in|on|at|"
                        r"from|of|during|to|by|working|adding|subtracting|combining|including|using)\b", re.I)
_REASON = re.compile(r"\s(?:because|since|as)\s+[^<]*$")
_COPULA = re.compile(r"\s+(is|are|was|were|will be|would be|be|equals|equal|comes to|come to|makes|"
                     r"amounts to|totals?)$", re.I)
_THERE = re.compile(r"^(there|here)\s+(is|are|was|were|will be|would be|would have been|will have been)$", re.I)
_TOTAL_TAIL = re.compile(r",?\s*\b(?:(for|at|with|of|to) )?(a total of|in total|total of|an? (?:total|sum) of|"
                         r"the total of|total)$", re.I)
_HAS_A = re.compile(r"^(.+?) (?:has|had|have|will have|would have) (?:a|an|the) ([a-z ]+?) of$", re.I)
_NAMED_OF = re.compile(r",?\s*\b(?:(?:for|to|at|with|by|in) )?(?:a|an|the) ((?:(?:total|combined|new|final|overall|"
                       r"average) )?[a-z]+) of$", re.I)
_BRINGING = re.compile(r"^(.+?),? (?:bringing|making|raising|lowering|reducing|increasing|putting|taking) (.+?) "
                       r"(?:up |down )?to$", re.I)
_EMPTY_CLAUSE = re.compile(r"^(that's|that’s|that is|this is|which is|it is|it's|it’s|which|that|this|"
                           r"that means|this means|which means|that would be|this would be|so)$", re.I)
# a subject that names a quantity: 'The total number of bars left in the box was' -> use it as the what
_QUANTITY = re.compile(r"\b(number|total|amount|cost|price|sum|difference|average|rate|area|perimeter|volume|"
                       r"weight|length|distance|speed|value|percentage|ratio|profit|income|salary|bill|budget|"
                       r"fee|score|height|width|age|capacity|combined|remainder|discount|savings|change)\b", re.I)
_VERBS = set("is are was were will would had have has did do does got get gets can could should must need needs "
             "went came left remain remains remained".split())
_STOP = set("in on at for from to per each every with by after before since than that which who "
            "when if because as and or but so while during into onto of left remaining altogether "
            "total overall now today yesterday tomorrow all together combined old".split()) | {"the", "a"} | _VERBS
_ADJ = {"more", "fewer", "less", "additional", "extra", "new", "total", "other", "remaining", "full", "whole",
        "square", "cubic", "empty", "free", "red", "blue", "green", "white", "black", "small", "large", "big"}
_LOWER_FIRST = set("the a an he she it they we you his her its their our my there this that these those each "
                   "every all one both some half twice she's he's it's there's two three four five six seven "
                   "eight nine ten eleven twelve twenty if when since after before with for in on at total "
                   "number amount sum average".split())
_MONEY = {"dollars", "dollar", "bucks"}
_LINKING_ADVERBS = {"similarly", "likewise", "additionally", "consequently", "accordingly", "finally", "lastly",
                    "firstly", "secondly", "thirdly", "subsequently", "eventually", "ultimately", "basically",
                    "essentially", "obviously", "clearly", "overall"}


def _strip_math_tail(pre: str) -> str:
    """Cut the written-out arithmetic before a mark: 'Tammy picks 10 trees x 12 oranges/tree per day = '
    -> 'Tammy picks'. From the end, numbers, operators and unit words are taken; the cut is at the
    leftmost number of that run, so words before the first number stay."""
    pre = re.sub(r"(?<=[A-Za-z])([*+×=])|([*+×=])(?=[A-Za-z])", r" \1\2 ", pre)   # 'season*4' -> 'season * 4'
    toks = list(re.finditer(r"\S+", pre))
    cut, units, right = None, 0, "op"                    # right: kind of the token to the right
    for m in reversed(toks):
        t = m.group(0)
        if re.search(r"\d", t) and _MATH_TOKEN.match(t.replace("$", "").replace(",", "") or "0") or \
                re.fullmatch(r"[a-z$\d.,()+\-*/×%]*\d[a-z$\d.,()+\-*/×%]*", t):
            cut, units, right = m.start(), 0, "num"      # a number, maybe with $ % or a glued unit: 46*7kg
        elif _MATH_TOKEN.match(t):
            if units:
                break                                    # a unit word must follow a number
            right = "op"
        elif _UNIT_WORD.match(t.lower()) and t.lower() not in _NOT_UNIT and units < 3 and right != "num":
            units, right = units + 1, "unit"             # '12 oranges/tree per day =': between number and '='
        else:
            break
    return re.sub(r"[\s=:+*×]+$", "", pre[:cut] if cut is not None else pre)


def _clean(s: str) -> str:
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s+([,.;:!?%])", r"\1", s)
    return s.strip(" ,;:-–")


def _lower_first(s: str) -> str:
    w = s.split(" ", 1)[0]
    return s[:1].lower() + s[1:] if w.lower() in _LOWER_FIRST else s


def _clause(pre: str) -> tuple[str, str]:
    """Text before the arithmetic -> (clause, condition moved to the end)."""
    pre = _strip_math_tail(pre)
    pre = re.sub(r"[\$€£]\s*$", "", pre).strip()
    parts = _MID_SPLIT.split(pre)
    cond = head = ""
    if len(parts) > 1:
        head, pre = " ".join(parts[:-1]), parts[-1]
        if _CONDITION.match(head.strip()) and len(head.split()) <= 14:
            cond = head
        subject = _SUBJECT.match(head.strip())
        if _VERB_ONLY.match(pre.strip()) and subject and len(subject.group(1).split()) <= 6:
            pre = subject.group(1) + " " + pre.strip()     # 'Their 2nd child was born ..., and therefore is'
            cond = ""
    pre = _DISCOURSE.sub("", pre.strip())
    pre = re.sub(r",?\s+(?:that is|which is|that's|that’s|or)$", "", pre)
    adv = re.match(r"^(\w+ly|now|today|yesterday|tomorrow|later|afterwards|overall),\s+(.+)$", pre, re.I)
    if adv:                                   # 'Currently, the machine is cutting' -> '... currently'
        pre = adv.group(2)
        if adv.group(1).lower() not in _LINKING_ADVERBS:
            cond = cond or adv.group(1).lower()
    m = re.match(r"^([^,]{3,}),\s+(.+)$", pre)
    if m and _CONDITION.match(m.group(1)) and not re.search(r"\d\s*$", m.group(1)):
        cond2, pre = m.group(1), _DISCOURSE.sub("", m.group(2))
        cond = cond2 if not cond else cond
    cond = _clean(cond)
    if cond and (len(cond.split()) > 14 or not re.search(r"[a-z]", cond)):
        cond = ""
    pre = re.sub(r"(?:\s+(?:just|only|exactly|about|around|approximately|roughly|precisely|a|an))+$", "", _clean(pre))
    if _EMPTY_CLAUSE.match(pre) or not pre:
        pre = ""
        if head and not cond and 2 <= len(head.split()) <= 16 and not re.search(r"[=+*×]", head):
            cond = "if " + _lower_first(_DISCOURSE.sub("", _clean(head)))   # 'She needs 5 bags, so that's'
            return pre, cond
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


# 'First find the total number of sheep by dividing ...: 81 / .9 = <<..>>90' -> the solution already says what
_INSTRUCTION = re.compile(r"(?:^(?:(?:first|then|next|now|finally|so|lastly|second|third),?\s+)*"
                          r"(?:(?:we|you)\s+(?:can|need to|have to|must|will|should)\s+|let's\s+|let us\s+)?|"
                          r"\bto\s+)(?:find|figure out|calculate|compute|determine|work out)\s+(?:out\s+)?([A-Za-z].+)$", re.I)


def _instruction(pre: str) -> str | None:
    """'... to find the total time spent on updates: 5 * 9 = ' -> 'the total time spent on updates'."""
    m = _INSTRUCTION.search(_strip_math_tail(pre).strip())
    if not m:
        return None
    what = re.split(r"\s+by\s+(?:\w+ing|multiplying|dividing|adding|subtracting)\b|:|,\s+(?:we|you|which|so|"
                    r"multiply|divide|add|subtract|then|and)\b|\s+(?:using|so|and then)\s", m.group(1))[0]
    what = _clean(re.sub(r"\s+(?:to be|by|of|is|are|as|with)$", "", _clean(what)))
    return what if len(what.split()) >= 2 and re.search(r"[a-z]{3,}", what) else None


def _locate(sentence: str) -> tuple[str, str, bool, bool, str]:
    """Cut a sentence around its last mark -> (text before, text after the value, money?, percent?, expr).

    'X is 25 feet because 5 x 5 = <<5*5=25>>25' is cut around the stated 25 instead."""
    marks = list(MARK.finditer(sentence))
    if not marks:
        raise ValueError(f"no calculation mark in {sentence!r}")
    last = marks[-1]
    start = marks[-2].end() if len(marks) > 1 else 0
    pre, post = sentence[start:last.start()], sentence[last.end():]
    if len(marks) > 1 and not re.search(r"[A-Za-z]{3,}", _strip_math_tail(pre)):
        pre = sentence[:marks[0].start()]                     # 'X has 2*3=<<>>6 and 6+1=<<>>7 apples'
    money = bool(re.search(r"\$\s*$", pre))
    post = _VALUE_HEAD.sub("", post)
    pct = post.lstrip().startswith("%")
    post = post.lstrip("% ").split("<<")[0]                   # never read into the next calculation
    reason = _REASON.search(" " + pre)
    if reason and not re.search(r"[A-Za-z]{3,}", post) and len(pre) - len(reason.group(0)) > 8:
        head = pre[:len(pre) - len(reason.group(0)) + 1]
        value = last.group(1).rsplit("=", 1)[-1].strip()
        m = re.search(r"(\$?)\s*" + re.escape(_fmt_like(value)) + r"(?![\d.])(%?)", head) or \
            re.search(r"(\$?)\s*" + re.escape(value) + r"(?![\d.])(%?)", head)
        if m:
            pre, post = head[:m.start()], head[m.end():]
            money, pct = bool(m.group(1)), bool(m.group(2))
        else:
            pre = head
    return pre, post, money, pct, last.group(1).rsplit("=", 1)[0]


def _finish(text: str) -> str:
    """Tidy a what-phrase and make it a subgoal sentence."""
    text = re.sub(r"\b(\w+) \1\b", r"\1", _clean(text)).rstrip(".!?,")   # 'for for' from a cut
    text = re.sub(r"(?<=\w )(If|When|To|And|So|Then|After|Since|With|For|In|On|At|This|That|The|There|It|He|She|"
                  r"They|We|You|Each|All|Of|By|From|As|Because|Before|Once|While)\b", lambda m: m.group(1).lower(), text)
    return "Calculate " + text + "."


def _subgoal(sentence: str, keep_condition: bool) -> str:
    pre, post, money, pct, expr = _locate(sentence)
    what = _instruction(pre)
    if what:
        return _finish(what)
    label = re.match(r"^\s*([A-Z][A-Za-z’' ]{0,30}?)\s*[:=]", pre)
    if label and not re.search(r"\b(?:is|are|was|were|has|have|had|will|would|costs?|needs?|and|so|then|also|"
                               r"this|that|it)\b", label.group(1), re.I) \
            and not re.search(r"[A-Za-z]{2,}", _strip_math_tail(pre[label.end():])):
        # 'Adults = 5 * $10 = $<<5*10=50>>50', 'Hammerhead shark: 180/6 = <<..>>30 teeth'
        noun, _ = _noun(post)
        what = "amount of money" if money or noun.lower() in _MONEY else f"number of {noun}" if noun else "number"
        return _finish(f"the {what} for {_lower_first(label.group(1))}")
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
        first = _DISCOURSE.sub("", _clean(re.split(r"=", MARK.sub("", pre))[0]))
        label = re.fullmatch(r"([A-Za-z][\w’' -]{1,40}?)\s*[:=]\s*.*", first)
        if label and not re.search(r"\d", label.group(1)):          # 'Adults = 5 * $10 = <<..>>50'
            return _finish(f"the {'amount of money' if money else 'number'} for {_lower_first(label.group(1))} {tail}")
        if cond:                                                   # 'With the coupon, it's 16-4 = <<..>>12'
            return _finish(f"the {'amount of money' if money else 'result'} {cond}")
        if re.search(r"[A-Za-z]{2,}", first):
            return _finish(first)
    total = _TOTAL_TAIL.search(clause)
    if total:
        clause = _clean(clause[:total.start()])
        if money and total.group(1) and clause:
            return _finish(f"the total cost when {_lower_first(clause)} {tail}")
        tail = tail if re.search(r"\b(total|in all|altogether|combined|overall)\b", tail) else _clean("in total " + tail)
    has_a, bringing = _HAS_A.match(clause), _BRINGING.match(clause)
    if has_a and not noun:
        return _finish(f"the {has_a.group(2)} of {_lower_first(has_a.group(1))} {tail}")
    named = _NAMED_OF.search(clause)
    if named and _QUANTITY.search(named.group(1)) and named.start() > 0:
        # 'Rudy runs for a total length of 20 minutes' -> 'the total length Rudy runs'
        return _finish(f"the {named.group(1)} {_lower_first(clause[:named.start()])} {rest} {cond}")
    if bringing and not noun:
        return _finish(f"{_lower_first(bringing.group(2))} when {_lower_first(bringing.group(1))} {tail}")
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
    elif re.match(r"^(?:the\s+)?(?:total|number|amount|sum|cost|price|difference|average)\b", clause, re.I):
        text = f"{clause_l} {tail}"                           # 'Total meatballs on the plates: 3 x 3 = 9'
    elif noun and clause:
        text = f"how many {noun} {clause_l} {tail}"
    elif noun:
        text = f"the number of {noun} {tail}"
    elif clause:
        text = f"how much {clause_l} {tail}" if not subj else f"the value of {clause_l} {tail}"
    elif rest.split(" ")[0].lower() in _VERBS:
        text = f"the number that {tail}"                      # '76/2 = <<..>>38 are left after ...'
    else:
        text = f"the result of {expr}"
    return _finish(text)


def _fmt_like(value: str) -> str:
    """'1148' -> '1,148' (how the sentence may spell a value it states)."""
    try:
        return f"{int(value):,}"
    except ValueError:
        return value
