"""A built-in, deterministic news corpus: short articles about events and one-sentence summaries.

Everything runs offline at any size. Example ``i`` of seed ``s`` depends only on ``(s, i)`` (its
own ``random.Random``, seeded from the string ``"gmmcollapse-news/<s>/<i>"``, drawing only
``random()``, whose sequence Python guarantees across versions), so any slice can be generated
alone, in chunks (:func:`iter_corpus`) or straight to a file (:func:`write_jsonl`) with
identical results, and 10^6 pairs never need to be in memory at once.

Grammar
-------
An article reports one **key event**: an *actor* did an *action* to a *count* of *things* in a
*place* on a *day*. Its reference summary is always the one sentence::

    <Actor> <canonical verb> <count in digits> <thing> in <place> on <day>.

e.g. "The coast guard rescued 42 sailors in Ashford on Monday." Writing it needs picking the key
event among several and normalising what the article says about it.

Vocabulary (sizes checked by the tests):

* 600 places (30 prefixes x 20 suffixes: Ash+ford -> Ashford), 7 days, 12 months.
* 5 actor categories with 16 actions in all (each with 3 to 7 thing nouns): rescue services
  (rescue, evacuate), police (arrest, seize, fine), companies (hire, cut, recall, open), government
  (build, approve, plant), charities (donate, feed, house, train). Actors: 28 fixed organisations,
  960 company names (12 x 10 x 8: "Norvex Motors"), 1200 person names (30 first x 40 last
  names) under 3 titles ("Mayor Anna Berg"), 40 foundations ("the Berg Foundation").
* Each action has 2 to 4 active verb phrases ("rescued N", "saved N", "pulled N ... to safety")
  and 1 to 3 passive ones ("N ... were pulled to safety by"); the summary uses its canonical verb.

Sentence types, in the article:

* **key** (one): the key event in one of 5 layouts (time or place first, "officials said", ...),
  active or passive (``p_passive``). The place and the day come with varied wording ("in the
  coastal town of X", "late on Friday"); the count is written in digits or in words
  (``p_words``: "three hundred and twelve"). With ``p_split_place`` / ``p_split_time`` the place
  / the day is left out and given by a **follow-up** sentence ("The operation took place in X.");
  with ``p_vague_count`` the key sentence says "dozens of" / "several" and a follow-up gives the
  exact count ("In total, 37 hikers were rescued, officials said.").
* **distractor** events (``min_distractors`` to ``max_distractors``): other events with their own
  actor, action, count, place and time, marked as past ("Last year, ...", "... in March.",
  "Two years ago, ...") or as separate ("Meanwhile, ...", "In a separate incident on Tuesday,
  ..."). With ``p_same_actor`` a distractor has the key event's actor, often the same action:
  "Last year, the coast guard rescued 45 hikers in Oakford." Only the marker tells them apart.
* **detail** sentences (0 to ``max_details``), with numbers that are not the count: durations,
  helpers ("About 40 divers took part in the operation."), injuries, yearly totals ("This brings
  the number of sailors rescued this year to 230."), costs, quotes.
* **background** sentences (0 to ``max_background``) about the place or the actor, with their own
  numbers (population, distance, founding year, staff).

Order: with ``p_key_first`` the key sentence opens the article; otherwise one or two background
or past-distractor sentences come first. Follow-ups, details, the other distractors and
background follow in random order; the follow-ups come right after the key sentence or after
one detail or background sentence, never after another event. The key event is the one event
sentence without a past or separate marker. An article has 2 to 10 sentences (median 6) and
20 to 120 words (median 62); a summary has 8 to 11 words.

Measured on 1000 default pairs: the key sentence is not first in 56% of the articles, the count
appears nowhere in digits in 40%; the lead sentence scores ROUGE-1 0.38 against the reference,
the best single sentence of the article 0.65 (the reference itself: 1). Speed on 2 CPU cores:
10^5 pairs in 3 to 5 s; 10^6 streamed to a 490 MB JSON-lines file in under a minute, ~200 MB
of memory.

Every number in a distractor, detail or background sentence differs from the key count, so a
model that copies the wrong number, the wrong place or the first event's actor is wrong by
ROUGE. ``with_facts=True`` adds the key event's fields to each example (for error analysis).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from gmmcollapse._validate import check_int, check_range
from gmmcollapse.store import atomic_open, dumps

__all__ = [
    "CorpusConfig",
    "iter_corpus",
    "make_corpus",
    "number_to_words",
    "split",
    "write_jsonl",
]

# ----------------------------------------------------------------------------- vocabulary

_PLACE_PREFIX = (
    "Ash", "Bel", "Brook", "Cal", "Clay", "Dun", "East", "Elm", "Fair", "Glen",
    "Green", "Hart", "High", "Kings", "Lake", "Lin", "Marl", "Mill", "North", "Oak",
    "Pen", "Red", "Rose", "Salt", "Stan", "Stone", "Thorn", "Wal", "West", "Wood",
)  # fmt: skip
_PLACE_SUFFIX = (
    "bury", "by", "field", "ford", "gate", "ham", "haven", "hurst", "ley", "mouth",
    "port", "stead", "ton", "vale", "wick", "worth", "bridge", "more", "dale", "well",
)  # fmt: skip
PLACES = tuple(p + s for p in _PLACE_PREFIX for s in _PLACE_SUFFIX)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

_FIRST = (
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "James",
    "Kemal", "Laura", "Marco", "Nadia", "Omar", "Paula", "Quentin", "Rosa", "Samuel", "Tara",
    "Umar", "Vera", "Walter", "Ximena", "Yusuf", "Zoe", "Lena", "Peter", "Mira", "Tomas",
)  # fmt: skip
_LAST = (
    "Berg", "Costa", "Dalton", "Evans", "Fischer", "Garcia", "Hale", "Ibsen", "Jensen", "Khan",
    "Larsen", "Moreau", "Nowak", "Okafor", "Patel", "Quinn", "Reyes", "Silva", "Tanaka", "Ulrich",
    "Varga", "Weber", "Young", "Zeller", "Adler", "Brandt", "Cruz", "Doyle", "Engel", "Ford",
    "Grant", "Holm", "Ito", "Jovic", "Keller", "Lund", "Mendez", "Novak", "Olsen", "Price",
)  # fmt: skip
PERSONS = tuple(f"{f} {last}" for f in _FIRST for last in _LAST)
_TITLES = ("Mayor", "Governor", "Minister")
_CO_PREFIX = (
    "Nor",
    "Alta",
    "Vel",
    "Quant",
    "Tera",
    "Zen",
    "Cor",
    "Lum",
    "Pax",
    "Ori",
    "Sol",
    "Vex",
)
_CO_SUFFIX = ("vex", "mira", "tronic", "ica", "ona", "dyne", "wave", "gen", "link", "ora")
_CO_KIND = ("Group", "Motors", "Industries", "Labs", "Foods", "Airlines", "Energy", "Systems")
COMPANIES = tuple(f"{p}{s} {k}" for p in _CO_PREFIX for s in _CO_SUFFIX for k in _CO_KIND)
_ORGS = frozenset(COMPANIES)
FOUNDATIONS = tuple(f"the {last} Foundation" for last in _LAST)

_DIRS = ("northern", "southern", "eastern", "western", "coastal", "central")
_PROBLEMS = (
    "heavy rain", "rising costs", "a shortage of housing", "strong winds", "a wave of crime",
    "long delays", "falling demand", "a heat wave", "budget cuts", "flooding",
)  # fmt: skip
_QUOTES = (
    "We are proud of everyone involved.",
    "This was a difficult day for the community.",
    "We will continue our work in the coming weeks.",
    "The situation is now under control.",
    "We acted as quickly as we could.",
    "This is only the beginning.",
)


@dataclasses.dataclass(frozen=True)
class _Action:
    verb: str  # canonical past tense, used in the summary
    nouns: tuple[str, ...]  # things counted; the summary copies the article's noun
    active: tuple[str, ...]  # "{n}" = count phrase + noun
    passive: tuple[str, ...]  # "{n} were <passive> by {actor}"
    events: tuple[str, ...]  # the event as a noun phrase, for follow-ups and details


def _a(verb, nouns, active, passive, events):
    return _Action(verb, tuple(nouns), tuple(active), tuple(passive), tuple(events))


_CATEGORIES: dict[str, dict[str, Any]] = {
    "rescue": {
        "actors": (
            "the fire department",
            "the coast guard",
            "rescue teams",
            "emergency crews",
            "the mountain rescue service",
            "firefighters",
            "lifeguards",
            "the ambulance service",
        ),
        "helpers": ("firefighters", "volunteers", "divers", "crew members"),
        "actions": (
            _a(
                "rescued",
                ("people", "hikers", "residents", "sailors", "climbers", "swimmers", "passengers"),
                ("rescued {n}", "saved {n}", "pulled {n} to safety", "brought {n} to safety"),
                ("rescued", "saved", "pulled to safety"),
                ("the rescue", "the operation"),
            ),
            _a(
                "evacuated",
                ("families", "residents", "patients", "students", "tourists"),
                ("evacuated {n}", "moved {n} out of danger", "led {n} to safety"),
                ("evacuated", "moved out of danger"),
                ("the evacuation", "the operation"),
            ),
        ),
    },
    "police": {
        "actors": (
            "police",
            "detectives",
            "border officers",
            "federal agents",
            "customs officers",
            "the national guard",
            "the harbour police",
        ),
        "helpers": ("officers", "agents", "detectives"),
        "actions": (
            _a(
                "arrested",
                ("suspects", "people", "protesters", "smugglers", "men"),
                ("arrested {n}", "detained {n}", "took {n} into custody"),
                ("arrested", "detained", "taken into custody"),
                ("the arrests", "the raid"),
            ),
            _a(
                "seized",
                ("vehicles", "weapons", "boats", "phones", "crates"),
                ("seized {n}", "confiscated {n}", "impounded {n}"),
                ("seized", "confiscated"),
                ("the seizure", "the raid"),
            ),
            _a(
                "fined",
                ("drivers", "companies", "shops", "landlords"),
                ("fined {n}", "issued fines to {n}"),
                ("fined",),
                ("the checks", "the crackdown"),
            ),
        ),
    },
    "company": {
        "actors": ("the company", "the firm"),  # plus COMPANIES
        "helpers": ("managers", "engineers"),
        "actions": (
            _a(
                "hired",
                ("workers", "engineers", "employees", "drivers", "technicians"),
                ("hired {n}", "took on {n}", "recruited {n}", "added {n}"),
                ("hired", "recruited"),
                ("the hiring", "the expansion"),
            ),
            _a(
                "cut",
                ("jobs", "positions", "roles"),
                ("cut {n}", "eliminated {n}", "shed {n}", "axed {n}"),
                ("cut", "eliminated"),
                ("the cuts", "the restructuring"),
            ),
            _a(
                "recalled",
                ("cars", "vehicles", "laptops", "heaters", "bikes", "phones"),
                ("recalled {n}", "called back {n}", "pulled {n} from the market"),
                ("recalled", "called back", "pulled from the market"),
                ("the recall",),
            ),
            _a(
                "opened",
                ("stores", "shops", "factories", "offices", "warehouses"),
                ("opened {n}", "launched {n}", "unveiled {n}"),
                ("opened", "launched"),
                ("the opening", "the expansion"),
            ),
        ),
    },
    "government": {
        "actors": (
            "the city council",
            "the health ministry",
            "the regional government",
            "the education authority",
            "the transport agency",
            "the housing agency",
        ),
        "helpers": ("officials", "inspectors", "planners"),
        "actions": (
            _a(
                "built",
                ("homes", "schools", "bridges", "clinics", "parks", "roads"),
                ("built {n}", "completed {n}", "finished building {n}"),
                ("built", "completed"),
                ("the project", "the construction"),
            ),
            _a(
                "approved",
                ("projects", "grants", "permits", "loans"),
                ("approved {n}", "signed off on {n}", "gave the green light to {n}"),
                ("approved", "signed off"),
                ("the decision", "the vote"),
            ),
            _a(
                "planted",
                ("trees", "gardens", "hedges"),
                ("planted {n}", "put in {n}"),
                ("planted",),
                ("the planting", "the project"),
            ),
        ),
    },
    "charity": {
        "actors": ("a local charity", "the food bank", "volunteers", "a church group", "students"),
        "helpers": ("volunteers", "donors", "helpers"),
        "actions": (
            _a(
                "donated",
                ("computers", "blankets", "books", "bicycles", "tents", "wheelchairs"),
                ("donated {n}", "gave away {n}", "handed out {n}", "delivered {n}"),
                ("donated", "handed out", "delivered"),
                ("the donation", "the campaign"),
            ),
            _a(
                "fed",
                ("families", "children", "people", "pensioners"),
                ("fed {n}", "served meals to {n}", "provided food for {n}"),
                ("fed", "served meals"),
                ("the campaign", "the drive"),
            ),
            _a(
                "housed",
                ("refugees", "families", "people", "students"),
                ("housed {n}", "found homes for {n}", "gave shelter to {n}"),
                ("housed", "given shelter"),
                ("the campaign", "the programme"),
            ),
            _a(
                "trained",
                ("teachers", "nurses", "volunteers", "apprentices"),
                ("trained {n}", "taught {n}", "gave training to {n}"),
                ("trained", "taught"),
                ("the programme", "the course"),
            ),
        ),
    },
}
_CAT_NAMES = tuple(_CATEGORIES)
_N_ACTIONS = sum(len(c["actions"]) for c in _CATEGORIES.values())
_N_FIXED_ACTORS = sum(len(c["actors"]) for c in _CATEGORIES.values())

_PAST_MARKERS = ("Last year", "Two years ago", "Last month", "Earlier this year", "In {month}")
_SEP_MARKERS = ("Meanwhile", "In a separate incident", "Separately", "Elsewhere", "On the same day")

# ----------------------------------------------------------------------------- numbers

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_to_words(n: int) -> str:
    """English words for ``0 <= n < 10**6``: 42 -> "forty-two", 305 -> "three hundred and five"."""
    check_int("n", n, 0, 10**6 - 1)
    return _words(int(n))


def _words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else "")
    if n < 1000:
        rest = n % 100
        return f"{_ONES[n // 100]} hundred" + (f" and {_words(rest)}" if rest else "")
    rest = n % 1000
    head = f"{_words(n // 1000)} thousand"
    if not rest:
        return head
    return head + (" and " if rest < 100 else " ") + _words(rest)


# ----------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """Knobs of the grammar (see the module docstring); the defaults are the built-in corpus.

    Attributes:
        p_key_first: probability that the key sentence opens the article.
        p_passive: probability of a passive key (and distractor) sentence.
        p_words: probability that a count is written in words instead of digits.
        p_split_place, p_split_time: probability that the key sentence leaves out the place /
            the day and a follow-up sentence gives it.
        p_vague_count: probability that the key sentence has a vague count ("dozens of") and a
            follow-up the exact one.
        p_same_actor: probability that a distractor event has the key event's actor.
        min_distractors, max_distractors: distractor events per article.
        max_details, max_background: detail / background sentences per article (at most).
        max_count: largest key count (counts are 2 .. max_count, log-uniform).
    """

    p_key_first: float = 0.45
    p_passive: float = 0.3
    p_words: float = 0.4
    p_split_place: float = 0.25
    p_split_time: float = 0.25
    p_vague_count: float = 0.15
    p_same_actor: float = 0.35
    min_distractors: int = 1
    max_distractors: int = 3
    max_details: int = 2
    max_background: int = 2
    max_count: int = 999

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.name.startswith("p_"):
                check_range(f.name, getattr(self, f.name), 0.0, 1.0)
        check_int("min_distractors", self.min_distractors, 0, 10)
        check_int("max_distractors", self.max_distractors, self.min_distractors, 10)
        check_int("max_details", self.max_details, 0, 10)
        check_int("max_background", self.max_background, 0, 10)
        check_int("max_count", self.max_count, 3, 999)


# ----------------------------------------------------------------------------- sampling


class _Rng:
    """Draws built on ``random()`` only (its sequence is stable across Python versions)."""

    __slots__ = ("_u",)

    def __init__(self, seed: int, index: int):
        self._u = random.Random(f"gmmcollapse-news/{seed}/{index}").random

    def chance(self, p: float) -> bool:
        return self._u() < p

    def pick(self, seq: Sequence):
        return seq[int(self._u() * len(seq))]

    def int(self, lo: int, hi: int) -> int:
        """Uniform on ``lo .. hi`` inclusive."""
        return lo + int(self._u() * (hi - lo + 1))

    def shuffle(self, xs: list) -> None:
        for i in range(len(xs) - 1, 0, -1):
            j = int(self._u() * (i + 1))
            xs[i], xs[j] = xs[j], xs[i]

    def count(self, hi: int, avoid: set[int]) -> int:
        """Log-uniform on ``2 .. hi``, never in ``avoid``."""
        while True:
            n = int(math.exp(self._u() * math.log(hi + 1 - 1e-9)))
            if n >= 2 and n not in avoid:
                return n


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _num(rng: _Rng, n: int, p_words: float) -> str:
    return _words(n) if rng.chance(p_words) else str(n)


def _vague(rng: _Rng, n: int) -> str:
    if 24 <= n < 100 and rng.chance(0.6):
        return "dozens of"
    if n >= 200 and rng.chance(0.6):
        return "hundreds of"
    return rng.pick(("several", "a number of"))


def _actor(rng: _Rng, cat: str) -> str:
    if cat == "company" and rng.chance(0.85):
        return rng.pick(COMPANIES)
    if cat == "government" and rng.chance(0.35):
        return f"{rng.pick(_TITLES)} {rng.pick(PERSONS)}"
    if cat == "charity" and rng.chance(0.3):
        return rng.pick(FOUNDATIONS)
    return rng.pick(_CATEGORIES[cat]["actors"])


def _place_phrase(rng: _Rng, place: str) -> str:
    form = rng.int(0, 5)
    if form <= 1:
        return f"in {place}"
    if form == 2:
        return f"in the town of {place}"
    if form == 3:
        return f"in the city of {place}"
    if form == 4:
        return f"in the {rng.pick(_DIRS)} town of {place}"
    return f"in the village of {place}"


def _time_phrase(rng: _Rng, day: str) -> str:
    return rng.pick(
        (
            f"on {day}",
            f"on {day}",
            f"on {day} morning",
            f"on {day} afternoon",
            f"on {day} evening",
            f"late on {day}",
            f"early on {day}",
        )
    )


def _core(rng: _Rng, action: _Action, actor: str, quantity: str, noun: str, passive: bool) -> str:
    """Subject + verb phrase: "the coast guard saved 12 hikers" / "12 hikers were saved by ..."."""
    if passive:
        return f"{quantity} {noun} were {rng.pick(action.passive)} by {actor}"
    vp = rng.pick(action.active).replace("{n}", f"{quantity} {noun}")
    return f"{actor} {vp}"


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


@dataclasses.dataclass
class _Event:
    cat: str
    action: _Action
    actor: str
    count: int
    noun: str
    place: str
    day: str


def _event(
    rng: _Rng,
    avoid_counts: set[int],
    max_count: int,
    *,
    like: _Event | None = None,
    p_same_actor: float = 0.0,
) -> _Event:
    if like is not None and rng.chance(p_same_actor):
        cat, actor = like.cat, like.actor
        action = like.action if rng.chance(0.6) else rng.pick(_CATEGORIES[cat]["actions"])
    else:
        cat = rng.pick(_CAT_NAMES)
        actor = _actor(rng, cat)
        action = rng.pick(_CATEGORIES[cat]["actions"])
    noun = rng.pick(action.nouns)
    count = rng.count(max_count, avoid_counts)
    place = rng.pick(PLACES)
    day = rng.pick(DAYS)
    if like is not None:
        while place == like.place:
            place = rng.pick(PLACES)
    return _Event(cat, action, actor, count, noun, place, day)


def _key_sentence(
    rng: _Rng, ev: _Event, cfg: CorpusConfig, omit_place: bool, omit_time: bool, vague: bool
) -> str:
    quantity = _vague(rng, ev.count) if vague else _num(rng, ev.count, cfg.p_words)
    passive = rng.chance(cfg.p_passive)
    core = _core(rng, ev.action, ev.actor, quantity, ev.noun, passive)
    place = "" if omit_place else _place_phrase(rng, ev.place)
    time = "" if omit_time else _time_phrase(rng, ev.day)
    layout = rng.int(0, 4)
    if layout == 1 and time:
        return f"{_cap(time)}, {_join(core, place)}."
    if layout == 2 and place:
        return f"{_cap(place)}, {_join(core, time)}."
    if layout == 3:
        return f"Officials said {_join(core, place, time)}."
    if layout == 4 and (place or time):
        return f"{_cap(_join(core, time, place))}, officials said."
    return f"{_cap(_join(core, place, time))}."


def _follow_ups(
    rng: _Rng, ev: _Event, cfg: CorpusConfig, omit_place: bool, omit_time: bool, vague: bool
) -> list[str]:
    out = []
    event = rng.pick(ev.action.events)
    if omit_place and omit_time and rng.chance(0.5):
        out.append(f"{_cap(event)} took place {_place_phrase(rng, ev.place)} on {ev.day}.")
    else:
        if omit_place:
            out.append(
                rng.pick(
                    (
                        f"{_cap(event)} took place {_place_phrase(rng, ev.place)}.",
                        f"It happened {_place_phrase(rng, ev.place)}, according to officials.",
                        f"{_cap(event)} was carried out {_place_phrase(rng, ev.place)}.",
                    )
                )
            )
        if omit_time:
            out.append(
                rng.pick(
                    (
                        f"{_cap(event)} took place {_time_phrase(rng, ev.day)}.",
                        f"Officials said {event} happened {_time_phrase(rng, ev.day)}.",
                        f"It happened {_time_phrase(rng, ev.day)}.",
                    )
                )
            )
    if vague:
        n = _num(rng, ev.count, cfg.p_words)
        pas = rng.pick(ev.action.passive)
        out.append(
            rng.pick(
                (
                    f"In total, {n} {ev.noun} were {pas}, officials said.",
                    f"Officials later confirmed that {n} {ev.noun} had been {pas}.",
                    f"The final count was {n} {ev.noun}.",
                )
            )
        )
    return out


def _distractor(
    rng: _Rng, key: _Event, cfg: CorpusConfig, used: set[int], past_only: bool
) -> tuple[str, bool]:
    """(sentence, may_lead): past distractors may also come before the key sentence.

    ``past_only``: a past distractor that can open the article.
    """
    ev = _event(rng, used, 999, like=key, p_same_actor=cfg.p_same_actor)
    used.add(ev.count)
    quantity = _num(rng, ev.count, cfg.p_words)
    core = _core(rng, ev.action, ev.actor, quantity, ev.noun, rng.chance(cfg.p_passive))
    place = _place_phrase(rng, ev.place)
    past = past_only or rng.chance(0.5)
    if past:
        marker = rng.pick(_PAST_MARKERS).replace("{month}", rng.pick(MONTHS))
        if rng.chance(0.3):  # marker at the end: "... in Oakford last year."
            return f"{_cap(_join(core, place))} {marker[:1].lower() + marker[1:]}.", True
        if ev.action is key.action and not past_only and rng.chance(0.3):  # not first
            return (
                (
                    f"{_cap(rng.pick(key.action.events))} follows a similar one "
                    f"{marker[:1].lower() + marker[1:]}, when {core} {place}."
                ),
                False,
            )
        return f"{marker}, {_join(core, place)}.", True
    marker = rng.pick(_SEP_MARKERS)
    if marker == "In a separate incident" and rng.chance(0.5):
        marker = f"{marker} on {rng.pick(DAYS)}"
    return f"{marker}, {_join(core, place)}.", False


def _kinds(rng: _Rng, n_kinds: int, most: int) -> list[int]:
    """0 to ``most`` distinct sentence kinds out of ``n_kinds`` (no sentence twice)."""
    kinds = list(range(n_kinds))
    rng.shuffle(kinds)
    return kinds[: rng.int(0, min(most, n_kinds))]


def _details(rng: _Rng, key: _Event, cfg: CorpusConfig, used: set[int]) -> list[str]:
    out = []
    helpers = _CATEGORIES[key.cat]["helpers"]
    event = rng.pick(key.action.events)
    for kind in _kinds(rng, 6, cfg.max_details):
        m = rng.count(99, used)
        used.add(m)
        mw = _num(rng, m, cfg.p_words)
        if kind == 0:
            out.append(f"{_cap(event)} lasted {mw} hours.")
        elif kind == 1:
            out.append(f"About {mw} {rng.pick(helpers)} took part in {event}.")
        elif kind == 2:
            out.append(
                f"{_cap(mw)} people were treated for minor injuries."
                if rng.chance(0.6)
                else "Nobody was hurt."
            )
        elif kind == 3:
            total = key.count + rng.int(1, 500)
            while total in used:
                total += 1
            used.add(total)
            out.append(
                f"This brings the number of {key.noun} {key.action.verb} this year to {total}."
            )
        elif kind == 4:
            out.append(f"{_cap(event)} cost about {mw} million dollars.")
        else:
            speaker = rng.pick(("a spokesperson", "an official", "a witness", "one resident"))
            out.append(f'"{rng.pick(_QUOTES)[:-1]}," {speaker} said.')
    return out


def _background(rng: _Rng, key: _Event, cfg: CorpusConfig, used: set[int]) -> list[str]:
    out = []
    org = key.actor in _ORGS or key.actor.startswith("the ")  # "... was founded in 1950"
    for kind in _kinds(rng, 5 if org else 3, cfg.max_background):
        if kind == 0:
            pop = rng.int(2, 400) * 1000
            pw = f"{pop:,}" if not rng.chance(cfg.p_words) else _words(pop)
            out.append(f"{key.place} is home to about {pw} residents.")
        elif kind == 1:
            m = rng.count(300, used)
            used.add(m)
            out.append(
                f"{key.place} lies about {_num(rng, m, cfg.p_words)} kilometres from "
                f"{rng.pick(('the coast', 'the capital', 'the border'))}."
            )
        elif kind == 2:
            out.append(
                f"The region has faced {rng.pick(_PROBLEMS)} for "
                f"{rng.pick(('weeks', 'months', 'years'))}."
            )
        elif kind == 3:
            out.append(f"{_cap(key.actor)} was founded in {rng.int(1890, 2015)}.")
        else:
            m = rng.count(999, used)
            used.add(m)
            out.append(
                f"{_cap(key.actor)} has about {_num(rng, m, cfg.p_words)} "
                f"{rng.pick(('staff', 'members', 'employees'))}."
            )
    return out


def _example(seed: int, index: int, cfg: CorpusConfig, with_facts: bool) -> dict:
    rng = _Rng(seed, index)
    key = _event(rng, set(), cfg.max_count)
    used = {key.count}
    omit_place = rng.chance(cfg.p_split_place)
    omit_time = rng.chance(cfg.p_split_time)
    vague = rng.chance(cfg.p_vague_count)
    key_sent = _key_sentence(rng, key, cfg, omit_place, omit_time, vague)
    follow = _follow_ups(rng, key, cfg, omit_place, omit_time, vague)
    n_dis = rng.int(cfg.min_distractors, cfg.max_distractors)
    dis = [_distractor(rng, key, cfg, used, past_only=False) for _ in range(n_dis)]
    details = _details(rng, key, cfg, used)
    background = _background(rng, key, cfg, used)

    others = background + [s for s, _ in dis] + details
    can_lead = list(range(len(background))) + [
        len(background) + j for j, (_, lead) in enumerate(dis) if lead
    ]
    lead: list[int] = []
    if not rng.chance(cfg.p_key_first):
        if not can_lead:  # make a past distractor to open with
            others.append(_distractor(rng, key, cfg, used, past_only=True)[0])
            can_lead = [len(others) - 1]
        rng.shuffle(can_lead)
        lead = can_lead[: rng.int(1, min(2, len(can_lead)))]
    pre = [others[i] for i in lead]
    post = [s for i, s in enumerate(others) if i not in lead]
    rng.shuffle(post)
    # follow-ups come right after the key sentence, or after one detail or background sentence
    # ("The rescue took place in X."), never after another event
    if follow:
        events = {s for s, _ in dis} | set(others[len(background) + len(dis) + len(details) :])
        after_one = post and post[0] not in events and not follow[0].startswith("It ")
        pos = 1 if after_one and rng.chance(0.5) else 0
        post[pos:pos] = follow
    sentences = [*pre, key_sent, *post]
    summary = (
        f"{_cap(key.actor)} {key.action.verb} {key.count} {key.noun} in {key.place} on {key.day}."
    )
    out = {"id": f"news-{seed}-{index}", "text": " ".join(sentences), "summary": summary}
    if with_facts:
        out["facts"] = {
            "actor": key.actor,
            "verb": key.action.verb,
            "count": key.count,
            "noun": key.noun,
            "place": key.place,
            "day": key.day,
            "key_position": len(pre),
            "n_sentences": len(sentences),
        }
    return out


# ----------------------------------------------------------------------------- public API


def _check_seed(seed: Any) -> None:
    check_int("seed", seed, 0, 2**63 - 1)


def iter_corpus(
    n: int,
    seed: int = 0,
    *,
    start: int = 0,
    chunk_size: int = 10_000,
    config: CorpusConfig | None = None,
    with_facts: bool = False,
) -> Iterator[list[dict]]:
    """Examples ``start .. start + n - 1`` of the corpus with ``seed``, in lists of ``chunk_size``.

    The chunking never changes the examples: example ``i`` depends only on ``(seed, i)``.
    """
    check_int("n", n, 0)
    check_int("start", start, 0)
    check_int("chunk_size", chunk_size, 1)
    _check_seed(seed)
    cfg = config if config is not None else CorpusConfig()
    seed, n, start = int(seed), int(n), int(start)
    for lo in range(start, start + n, chunk_size):
        hi = min(lo + chunk_size, start + n)
        yield [_example(seed, i, cfg, with_facts) for i in range(lo, hi)]


def make_corpus(
    n: int,
    seed: int = 0,
    *,
    start: int = 0,
    config: CorpusConfig | None = None,
    with_facts: bool = False,
) -> list[dict]:
    """``n`` pairs ``{"id", "text", "summary"}`` (plus ``"facts"`` when ``with_facts``).

    Same ``seed`` -> identical pairs; ``make_corpus(n, s, start=k)`` equals
    ``make_corpus(k + n, s)[k:]``, so disjoint index ranges give disjoint train / test sets.
    """
    out: list[dict] = []
    for chunk in iter_corpus(n, seed, start=start, config=config, with_facts=with_facts):
        out.extend(chunk)
    return out


def write_jsonl(
    path: str | os.PathLike,
    n: int,
    seed: int = 0,
    *,
    start: int = 0,
    config: CorpusConfig | None = None,
    chunk_size: int = 10_000,
) -> str:
    """Stream ``n`` pairs to a JSON-lines file (XL-Sum fields ``id``, ``text``, ``summary``).

    Written atomically (:func:`gmmcollapse.store.atomic_open`), so a finished file is always
    complete. Returns the path; read it back with :func:`gmmcollapse.summarize.load_pairs`.
    """
    path = os.fspath(path)
    with atomic_open(path) as f:
        for chunk in iter_corpus(n, seed, start=start, chunk_size=chunk_size, config=config):
            f.writelines(dumps(ex, ensure_ascii=False) + "\n" for ex in chunk)
    return path


def split(
    pairs: Sequence[dict], fractions: Sequence[float], seed: int = 0
) -> tuple[list[dict], ...]:
    """Shuffle ``pairs`` (with ``seed``) and cut them into ``len(fractions)`` disjoint parts.

    Part ``j`` has ``floor(fractions[j] * len(pairs))`` pairs; when the fractions sum to 1 the
    last part also takes the rounding remainder, so nothing is lost.
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or fr.size == 0:
        raise ValueError(f"fractions must be a non-empty list of numbers, got {fractions!r}")
    check_range("fractions", fr, 0.0, 1.0, lo_open=True)
    total = float(fr.sum())
    if total > 1 + 1e-9:
        raise ValueError(f"fractions must sum to at most 1, got {total:g}")
    _check_seed(seed)
    n = len(pairs)
    order = np.random.default_rng(int(seed)).permutation(n)
    sizes = [math.floor(f * n + 1e-9) for f in fr]
    if abs(total - 1) <= 1e-9:
        sizes[-1] = n - sum(sizes[:-1])
    parts, lo = [], 0
    for s in sizes:
        parts.append([pairs[i] for i in order[lo : lo + s]])
        lo += s
    return tuple(parts)
