"""Chapter 5's built-in labelled data, generated offline from Chapter 1's story world.

Two generators, both fixed by a seed (Python's `random.Random`, the same on
every platform):

* `generate_reviews`: short reviews of the world's toys and places, labelled
  positive (1) or negative (0). The label depends on negation and word order
  ("not bad" is positive; "great, not bad" is positive but "bad, not great" is
  negative), and every word is equally likely in both classes. A bag of words
  sees the same words either way, so it scores about 50%; a model that reads
  the words in order can get them all right.
* `generate_instructions`: instruction/input/output triples with one exact
  answer each: questions about a story of Chapter 1's world, told in three
  sentences ("Who is the story about?", "What did they find?"), one-digit
  sums, and spelling a word backwards. This is synthetic data in the plain
  sense: input and expected output generated together from a known context.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ch01_bigram import Story, generate_stories
from ch01_bigram.corpus import ANIMALS, COLOURS, NAMES, OBJECTS, PLACES
from coursekit.settings import DEFAULT_SEED

POSITIVE = ["good", "great", "nice", "fun", "lovely", "cool"]
NEGATIVE = ["bad", "awful", "boring", "dull", "ugly", "sad"]
REVIEW_LABELS = ["negative", "positive"]


@dataclass(frozen=True)
class Review:
    text: str
    label: int  # 1 positive, 0 negative


def _phrase(rng: random.Random, negated: bool, adj: str) -> str:
    """'was great', 'was not great' or "wasn't great"."""
    if not negated:
        return f"was {adj}"
    return rng.choice([f"was not {adj}", f"wasn't {adj}"])


def _polar(rng: random.Random) -> tuple[str, int]:
    """A random adjective and its polarity (1 positive)."""
    positive = rng.random() < 0.5
    return rng.choice(POSITIVE if positive else NEGATIVE), int(positive)


def generate_review(rng: random.Random) -> Review:
    subject = rng.choice([f"the {rng.choice(COLOURS)} {rng.choice(OBJECTS)}", f"the {rng.choice(PLACES)}",
                          f"the {rng.choice(ANIMALS)}"])
    kind = rng.randrange(3)
    if kind == 0:  # negation flips the adjective: "the kite was not bad" is positive
        adj, pol = _polar(rng)
        negated = rng.random() < 0.5
        text = f"{subject.capitalize()} {_phrase(rng, negated, adj)}."
        label = pol ^ negated
    elif kind == 1:  # the clause after "but" decides; the first one is noise
        first, _ = _polar(rng)
        adj, pol = _polar(rng)
        negated = rng.random() < 0.5
        text = (f"At first {subject} {_phrase(rng, rng.random() < 0.5, first)}, "
                f"but in the end it {_phrase(rng, negated, adj)}.")
        label = pol ^ negated
    else:  # "X, not Y": one adjective of each polarity, and their order decides
        adj, pol = _polar(rng)
        other = rng.choice(NEGATIVE if pol else POSITIVE)
        text = f"{rng.choice(NAMES)} said {subject} was {adj}, not {other}."
        label = pol
    return Review(text, label)


def generate_reviews(n: int, seed: int = DEFAULT_SEED) -> list[Review]:
    rng = random.Random(seed)
    return [generate_review(rng) for _ in range(n)]


# --------------------------------------------------------------------------- #
# Instructions
# --------------------------------------------------------------------------- #

@dataclass(frozen=True)
class Instruction:
    instruction: str
    input: str
    output: str
    task: str = "custom"

    def to_dict(self) -> dict:
        return {"instruction": self.instruction, "input": self.input, "output": self.output, "task": self.task}


TASKS = ["who", "found", "colour", "place", "animal", "add", "backwards"]
BACKWARD_WORDS = OBJECTS + ANIMALS + COLOURS


def short_story(story: Story) -> str:
    """The facts of a Chapter 1 story in three sentences (about 30 tokens instead of 90: cheaper to train on)."""
    he = story.pronoun.capitalize()
    return (f"{story.name} had {_a(story.colour)} {story.obj}. {he} went to the {story.place} and met "
            f"{_a(story.animal)}. There {story.pronoun} found {_a(story.found_adj)} {story.found}.")


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def generate_instructions(n: int, seed: int = DEFAULT_SEED) -> list[Instruction]:
    """`n` examples, the tasks in turn (so every task has about n / 7 examples)."""
    rng = random.Random(seed)
    stories = generate_stories(n, seed)
    out = []
    for i, story in enumerate(stories):
        task = TASKS[i % len(TASKS)]
        if task == "who":
            q, a = "Who is the story about?", story.name
        elif task == "found":
            q, a = "What did they find?", story.found
        elif task == "colour":
            q, a = f"What colour was the {story.obj}?", story.colour
        elif task == "place":
            q, a = "Where did they go?", story.place
        elif task == "animal":
            q, a = "Which animal did they meet?", story.animal
        if task in ("who", "found", "colour", "place", "animal"):
            out.append(Instruction(q, short_story(story), a, task))
        elif task == "add":
            x, y = rng.randrange(10), rng.randrange(10)
            out.append(Instruction(f"What is {x} plus {y}?", "", str(x + y), task))
        else:
            word = rng.choice(BACKWARD_WORDS)
            out.append(Instruction("Spell the word backwards.", word, word[::-1], task))
    return out
