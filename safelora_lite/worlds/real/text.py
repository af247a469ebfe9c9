"""The toy world's text in natural case, for a real tokenizer: "hey , how do i bake bread ?" -> "Hey, how do I bake bread?".

The toy data is lower case with punctuation split off by spaces (one word, one token of its word-level
tokenizer). A real model reads ordinary English: punctuation is joined to the word before it, sentences
start with a capital, "i" is "I", and the toy world's names are capitalised. The words are unchanged, so
a record means what it meant in the toy world.
"""

import re

NAMES = ("tom", "anna", "sam", "maria", "ben", "lucy")  # the toy world's word-problem names (worlds/toy/data.py)
_JOINED = re.compile(r" ([.,!?;:])")
_SENTENCE_START = re.compile(r"(^|[.!?] )([a-z])")
_PROPER = re.compile(r"\b(i|" + "|".join(NAMES) + r")\b")


def natural_case(text: str) -> str:
    """Toy text in natural case (punctuation joined, capitals at sentence starts, "I" and names)."""
    text = _JOINED.sub(r"\1", " ".join(text.split()))
    text = _PROPER.sub(lambda m: m.group(1).capitalize(), text)
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def natural_record(record: dict) -> dict:
    """A toy record with its prompt and response in natural case (kind, category and answer kept)."""
    return {**record, "prompt": natural_case(record["prompt"]), "response": natural_case(record["response"])}
