"""What a question asks for, and whether a Q&A pair says it: "when", "how far apart", "which fungicide".

A pair covers a question by similarity and by naming the same things (assistant.trust). That is not
enough when the farmer asks something else about the same thing: "when should I plant maize?" is
near "What is a common row spacing for maize?" (same crop, "plant" in both) and was answered, marked
checked, with the row spacing. A checked answer that answers another question is the worst answer
the product can give, because it looks verified. So the specific kinds of ask are read from the
question, and a pair covers it only if its question or answer says that kind of thing:

- time (when, which month, how soon): a season, a month, days or weeks, before/after, "when";
- duration (how long, how many days): a span of time;
- spacing (how far apart): "apart", "spacing", "between";
- depth (how deep): "deep", "depth";
- amount (how much, how many, what dose, per hectare): a number;
- frequency (how often, how many times): every, once, twice, times a, daily, weekly;
- a product or kind (which fungicide, what fertiliser, which variety): that kind named in the pair;
- a value (what pH, what temperature, what altitude, how tall): that quantity, with a number.

Questions without such an ask (what is, why, how does) are left to similarity and names, as before.
A question that is not covered is withheld under *checked only* with its nearest checked questions
offered ("Did you mean…"), so a false refusal costs a click; a false match costs a farmer's crop.
Measured on agriculture (README "Checked answers"): same-subject questions that ask another thing
(datasets/trust/near_miss.jsonl) covered by a wrong pair 9/40 -> 0/40 of those written with these
rules, 16/40 -> 3/40 of those written blind; held-out, farmer and blind ask-form paraphrases keep
their coverage (51/52, 53/62, 27/40). Rules, not a model: they are read, tested and changed in one
place, and every word they look for is in this file.
"""

from __future__ import annotations

import re

MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_NUMBER = r"(?<![\w.])\d+(?:[.,]\d+)?|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|" \
          r"thirty|fifty|hundred|half|dozen)\b"
# A span of time is counted ("60 to 85 days", "a few weeks"): "day length" is no span.
_SPAN = rf"(?:{_NUMBER}|\ba|\ban|\bfew|\bseveral)\s+(?:\w+\s+)?(?:days?|weeks?|months?|years?|hours?|minutes?|seasons?)\b"
_LENGTH = rf"(?:{_NUMBER})\s*(?:cm|m|metres?|meters?|feet|foot|ft)\b"  # "1,200 m", "four metres"
_WH_START = re.compile(r"^\W*(?:and |so |but )?(?:which|what|how|why|where|who|whose|whom)\b")

# kind of ask -> (how a question asks it, what a pair that answers it says)
ASKS: dict[str, tuple[str, str]] = {
    # "when" opening a question asks for a time; so does "…, when should i …" in a question that opens
    # no other way (asks_of). "what do roots lack when a field is waterlogged?" and "which device …
    # when deciding when to irrigate?" ask what and which.
    "time": (r"^\W*(?:and |so |but )?when\b|\bwhat time\b|\b(?:which|what) (?:month|season|date|stage)\b|"
             r"\bhow soon\b",
             rf"\bwhen\b|\bbefore\b|\bafter\b|\buntil\b|\bonce\b|\bduring\b|\bseason|\b(?:{MONTHS})\b|\bspring\b|"
             rf"\bsummer\b|\bautumn\b|\bwinter\b|\brains?\b|\bstage\b|{_SPAN}"),
    "duration": (r"\bhow long\b|\bhow many (?:days|weeks|months|years|hours|minutes|seasons)\b|\bhow soon\b",
                 _SPAN),
    "spacing": (r"\bhow far apart\b|\bspacing\b|\bhow close (?:together|to each other)\b|\bdistance between\b",
                r"\bapart\b|\bspac|\bbetween\b|\bdistance\b"),
    "depth": (r"\bhow deep\b|\bdepth\b", r"\bdeep|\bdepth\b"),
    "amount": (r"\bhow much\b|\bhow many\b(?! (?:days|weeks|months|years|hours|minutes|seasons|times)\b)|"
               r"\bwhat (?:dose|rate|amount|quantity)\b|\bper (?:hectare|acre|litre|liter|plant|square)",
               _NUMBER),
    "frequency": (r"\bhow often\b|\bhow many times\b|\bhow frequently\b",
                  r"\bevery\b|\bonce\b|\btwice\b|\btimes\b|\bdaily\b|\bweekly\b|\bmonthly\b|\bregularly\b|"
                  r"\bper (?:day|week|month|year|season)\b|\ba (?:day|week|month|year|season)\b"),
    # A value of one quantity: the pair states that quantity with a number ("a pH of around 6.2 to 6.8").
    "ph": (r"\b(?:what|which|best|ideal|right|good) (?:soil )?ph\b", r"\bph\b[^.;]*\d|\d[^.;]*\bph\b"),
    "temperature": (r"\b(?:what|which|best|ideal|right|good) (?:soil |air )?temperature\b|\bhow (?:warm|hot|cold)\b",
                    r"\d\s*°|\bdegrees\b"),
    "altitude": (r"\b(?:what|which|best|ideal|right|good) (?:altitude|elevation)\b|\babove sea level\b",
                 _LENGTH),
    "height": (r"\bhow tall\b|\bwhat height\b|\bhow high (?!above)", _LENGTH),
}
_WHEN_MIDWAY = re.compile(r"\bwhen (?:should|shall|do|does|did|can|could|is|are|was|were|will|would|must|to)\b")

# "which fungicide ..." / "what fertiliser ...": the kind asked for must be named by the pair.
# Each kind -> the words that name it (an insecticide is a pesticide; Bt is sold as one).
KINDS: dict[str, str] = {
    "pesticide": r"pesticid|insecticid|fungicid|herbicid|biopesticid|chemical|spray",
    "insecticide": r"insecticid|pesticid|biopesticid|\bbt\b",
    "fungicide": r"fungicid",
    "herbicide": r"herbicid|glyphosate",
    "chemical": r"pesticid|insecticid|fungicid|herbicid|chemical|compound|glyphosate",
    "spray": r"spray|pesticid|insecticid|fungicid|herbicid",
    "medicine": r"medicin|drug|antibiotic|treatment",
    "fertiliser": r"fertili[sz]|manure|compost|nitrogen|phosph|potash|urea",
    "variety": r"variet|cultivar|hybrid",
    "breed": r"breed",
    "vaccine": r"vaccin",
}
# Varieties and breeds are named, not called so: "kills Cavendish bananas" answers "which variety".
# Products are not: "Phytophthora infestans" names the pathogen, not the fungicide that controls it.
NAMED_KINDS = {"variety", "breed"}
_KIND_ASKED = re.compile(r"\b(?:which|what|best|good)\s+(?:\w+\s+)?(pesticides?|insecticides?|fungicides?|herbicides?|"
                         r"chemicals?|sprays?|medicines?|fertili[sz]ers?|varieties|variety|breeds?|vaccines?)\b")
_COMPILED = {kind: (re.compile(asked), re.compile(said)) for kind, (asked, said) in ASKS.items()}


def asks_of(question: str) -> set[str]:
    """The specific kinds of ask in a question: {"time"}, {"depth", "spacing"}, or none."""
    text = question.lower()
    found = {kind for kind, (asked, _) in _COMPILED.items() if asked.search(text)}
    if _WHEN_MIDWAY.search(text) and not _WH_START.search(text):  # "my maize, when should i plant it?"
        found.add("time")
    found |= {f"kind:{_singular(m.group(1))}" for m in _KIND_ASKED.finditer(text)}
    return found


def unanswered_asks(question: str, pair_question: str, pair_answer: str) -> set[str]:
    """The asks of `question` that the pair does not say anything of; empty when the pair may answer it."""
    said = f"{pair_question} {pair_answer}".lower()
    missing = set()
    for ask in asks_of(question):
        if ask.startswith("kind:"):
            if not re.search(KINDS[ask[5:]], said) and not (ask[5:] in NAMED_KINDS and _new_name(question, pair_answer)):
                missing.add(ask)
        elif not _COMPILED[ask][1].search(said):
            missing.add(ask)
    return missing


def answers_the_ask(question: str, match) -> bool:
    """Whether the pair (a grounding.Match) says the kind of thing the question asks for."""
    return not unanswered_asks(question, match.question, match.answer)


def _new_name(question: str, answer: str) -> bool:
    """Whether the answer names something (a capitalised name or code) the question does not."""
    from assistant.checking import names_in

    return bool(names_in(answer) - names_in(question))


def _singular(word: str) -> str:
    word = word.replace("fertilizer", "fertiliser")
    if word == "varieties":
        return "variety"
    return word[:-1] if word.endswith("s") else word
