"""The course's built-in corpus: short stories generated from a seed.

The text is made to have structure at three ranges, so that each chapter has
something new to learn from it:

* spelling: a small vocabulary of real English words (a bigram model learns
  which letter follows which);
* grammar: a handful of sentence patterns ("One day, Mia took the red ball to
  the park.");
* long-range links: the name, the pronoun and the object introduced at the
  start of a story come back sentences later. Only a model that can look back
  (attention, Chapter 2) can keep them consistent; `long_range_score` measures
  how often it does.

Generation uses Python's `random.Random`, whose sequence for a given seed is
the same on every platform, so the same seed gives the same bytes everywhere.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from coursekit.settings import DEFAULT_SEED  # the built-in corpus is generated with the course's seed

DEFAULT_BYTES = 1_000_000

GIRLS = ["Mia", "Lily", "Anna", "Emma", "Rosa", "Nora", "Ella", "Lucy", "Ruby", "Zoe",
         "Ava", "Maya", "Iris", "Jane", "Kate", "Sara"]
BOYS = ["Tom", "Ben", "Sam", "Leo", "Max", "Jack", "Finn", "Noah", "Owen", "Eli",
        "Adam", "Luke", "Paul", "Theo", "Hugo", "Tim"]
NAMES = GIRLS + BOYS
COLOURS = ["red", "blue", "green", "yellow", "pink", "brown", "white", "black", "orange", "purple"]
OBJECTS = ["ball", "kite", "hat", "boat", "book", "drum", "cup", "box", "doll", "car", "bell", "bag"]
PLACES = ["park", "forest", "beach", "garden", "river", "hill", "farm", "lake", "town", "field"]
ANIMALS = ["dog", "cat", "bird", "frog", "rabbit", "fox", "duck", "bear", "owl", "mouse"]
ANIMAL_ADJ = ["friendly", "little", "big", "shy", "funny", "old", "kind", "sleepy"]
FINDS = ["key", "shell", "stone", "coin", "feather", "leaf", "map", "ring", "star", "egg"]
FIND_ADJ = ["shiny", "small", "big", "old", "smooth", "tiny", "round", "gold"]
HIDING = ["a rock", "a tree", "a bush", "the sand", "a log", "some leaves"]
FEELINGS = ["happy", "glad", "proud", "excited", "surprised"]
WEATHER = ["sunny", "rainy", "windy", "warm", "cold", "bright"]
KID_ADJ = ["little", "young", "kind", "curious", "happy", "brave"]


@dataclass(frozen=True)
class Story:
    """One story and the facts it is built from (Chapter 5 asks questions about them)."""

    name: str
    gender: str  # "girl" or "boy"
    colour: str
    obj: str
    place: str
    animal: str
    found: str
    found_adj: str
    text: str

    @property
    def pronoun(self) -> str:
        return "she" if self.gender == "girl" else "he"

    @property
    def possessive(self) -> str:
        return "her" if self.gender == "girl" else "his"


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _a(word: str) -> str:
    """The word with its article: "a red ball", "an orange ball"."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def generate_story(rng: random.Random) -> Story:
    """Draw one story. Every choice comes from `rng`, so a seed fixes the text."""
    gender = rng.choice(["girl", "boy"])
    name = rng.choice(GIRLS if gender == "girl" else BOYS)
    he, his = ("she", "her") if gender == "girl" else ("he", "his")
    colour, obj = rng.choice(COLOURS), rng.choice(OBJECTS)
    place, animal = rng.choice(PLACES), rng.choice(ANIMALS)
    found, found_adj = rng.choice(FINDS), rng.choice(FIND_ADJ)
    a_adj = rng.choice(ANIMAL_ADJ)

    s = []
    s.append(rng.choice([
        f"Once upon a time, there was {_a(rng.choice(KID_ADJ))} {gender} named {name}.",
        f"There once was {_a(rng.choice(KID_ADJ))} {gender} called {name}.",
        f"Once there was a {gender} named {name}.",
    ]))
    s.append(rng.choice([
        f"{name} had {_a(colour)} {obj}.",
        f"{name} had {_a(colour)} {obj} that {he} loved very much.",
        f"{name} had {_a(colour)} {obj} and took it everywhere.",
    ]))
    s.append(rng.choice([
        f"One day, {name} took the {obj} to the {place}.",
        f"One {rng.choice(WEATHER)} morning, {name} went to the {place} with {his} {obj}.",
        f"One day, {he} went to the {place} with the {colour} {obj}.",
    ]))
    s.append(rng.choice([
        f"At the {place}, {he} met {_a(a_adj)} {animal}.",
        f"There {he} saw {_a(a_adj)} {animal}.",
    ]))
    if rng.random() < 0.7:
        s.append(rng.choice([
            f"\"Hello, {animal}!\" said {name}.",
            f"\"Hello!\" said the {animal}. \"Can I play with your {obj}?\"",
            f"The {animal} looked at the {obj} and wanted to play.",
        ]))
        s.append(rng.choice([
            f"\"Yes, you can play with my {obj},\" said {name}.",
            f"{name} gave the {obj} to the {animal}, and they played all day.",
            f"{_cap(he)} let the {animal} play with the {colour} {obj}.",
        ]))
    s.append(rng.choice([
        f"Under {rng.choice(HIDING)}, {name} found {_a(found_adj)} {found}.",
        f"Then {name} found {_a(found_adj)} {found} under {rng.choice(HIDING)}.",
        f"Near the {place}, {he} found {_a(found_adj)} {found}.",
    ]))
    if rng.random() < 0.6:
        s.append(rng.choice([
            f"{_cap(he)} showed the {found} to the {animal}.",
            f"{name} put the {found} in {his} {obj}.",
            f"\"Look at this {found}!\" said {name}.",
        ]))
    s.append(rng.choice([
        f"When the sun went down, {name} went home with the {colour} {obj}.",
        f"At the end of the day, {name} took {his} {obj} and the {found} home.",
        f"In the evening, {name} said goodbye to the {animal} and went home.",
    ]))
    s.append(rng.choice([
        f"{name} was very {rng.choice(FEELINGS)}.",
        f"{_cap(he)} was very {rng.choice(FEELINGS)}.",
        f"It was a good day for {name}.",
    ]))
    return Story(name, gender, colour, obj, place, animal, found, found_adj, " ".join(s))


def generate_stories(n: int, seed: int = DEFAULT_SEED) -> list[Story]:
    """`n` stories from `seed` (the first `n` stories of `generate_corpus(seed)`)."""
    rng = random.Random(seed)
    return [generate_story(rng) for _ in range(n)]


def generate_corpus(seed: int = DEFAULT_SEED, n_bytes: int = DEFAULT_BYTES) -> str:
    """Stories separated by blank lines, at least `n_bytes` long (whole stories only)."""
    if n_bytes <= 0:
        raise ValueError(f"n_bytes must be positive, got {n_bytes}")
    rng = random.Random(seed)
    parts, size = [], 1  # the final newline
    while size < n_bytes or not parts:
        text = generate_story(rng).text
        size += len(text) + (2 if parts else 0)  # ASCII, so characters are bytes; "\n\n" between stories
        parts.append(text)
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------- #
# Long-range checker
# --------------------------------------------------------------------------- #

_INTRO = re.compile(r"(?:(girl|boy) )?(?:named|called) ([A-Z][a-z]+)")
_OWNED = re.compile(r"had an? ([a-z]+) ([a-z]+)")
_NAME_WORD = re.compile(r"\b[A-Z][a-z]+\b")
_OBJECT_WORD = re.compile(r"\b(" + "|".join(OBJECTS) + r")\b")
_PRONOUN = re.compile(r"\b(she|he|her|his|She|He|Her|His)\b")
_GIRL_PRONOUNS = {"she", "her"}


@dataclass(frozen=True)
class LongRangeScore:
    """How faithfully stories refer back to what they introduced, mention by mention.

    Each field is the share of later mentions that agree with the story's start:
    `names`: later names equal to the name introduced ("named Mia"), among
    the words that are names from the corpus's list or the introduced word itself;
    `objects`: later objects equal to the one introduced ("had a red ball");
    `pronouns`: later he/she/his/her that match "girl" or "boy" in the intro.
    A story without an intro is not scored; `mentions` counts the mentions checked.
    Guessing scores about 1/32 on names, 1/12 on objects and 1/2 on pronouns.
    """

    stories: int
    mentions: int
    names: float
    objects: float
    pronouns: float

    @property
    def score(self) -> float:
        """The mean of the three shares."""
        return (self.names + self.objects + self.pronouns) / 3


def long_range_score(text: str) -> LongRangeScore:
    """Score `text` (a corpus or a model's sample) for the long-range property.

    Stories are separated by blank lines; only the part of a story after its
    intro is checked, so a sample cut off mid-story still counts for what it has.
    """
    name_set = set(NAMES)
    hits = {"names": 0, "objects": 0, "pronouns": 0}
    totals = {"names": 0, "objects": 0, "pronouns": 0}
    stories = 0
    for story in re.split(r"\n\s*\n", text):
        intro = _INTRO.search(story)
        if not intro:
            continue
        stories += 1
        gender, name = intro.group(1), intro.group(2)
        rest = story[intro.end():]
        later = [w for w in _NAME_WORD.findall(rest) if w in name_set or w == name]
        totals["names"] += len(later)
        hits["names"] += sum(w == name for w in later)
        owned = _OWNED.search(story, intro.end())
        if owned:
            later_objs = _OBJECT_WORD.findall(story[owned.end():])
            totals["objects"] += len(later_objs)
            hits["objects"] += sum(o == owned.group(2) for o in later_objs)
        if gender:
            pronouns = [p.lower() for p in _PRONOUN.findall(rest)]
            totals["pronouns"] += len(pronouns)
            hits["pronouns"] += sum((p in _GIRL_PRONOUNS) == (gender == "girl") for p in pronouns)
    share = {k: hits[k] / totals[k] if totals[k] else 0.0 for k in hits}
    return LongRangeScore(stories, sum(totals.values()), share["names"], share["objects"], share["pronouns"])
