"""The shipped toy data: regenerated from its seed it equals what is committed; held-out really is held out."""

import json
import re

import pytest

from safelora_lite.worlds.toy import data as toy_data
from safelora_lite.paths import data_dir

TOY = data_dir() / "toy"


@pytest.fixture(scope="module")
def splits():
    return toy_data.generate(seed=0)


def test_regenerated_data_equals_committed(splits):
    committed = {p.stem for p in TOY.glob("*.jsonl")}
    assert committed == set(splits), "data/toy has other splits than the generator: run python -m safelora_lite.worlds.toy.data"
    for name, records in splits.items():
        on_disk = [json.loads(line) for line in (TOY / f"{name}.jsonl").read_text().splitlines()]
        assert on_disk == records, f"data/toy/{name}.jsonl differs from the generator: regenerate and commit it"


def test_generation_is_seeded(splits):
    assert toy_data.generate(seed=0) == splits
    assert toy_data.generate(seed=1)["harmful_test"] != splits["harmful_test"]


def test_schema(splits):
    for name, records in splits.items():
        for r in records:
            assert set(r) == {"prompt", "response", "kind", "category", "answer"}
            assert r["kind"] in toy_data.KINDS
            assert (r["answer"] is not None) == (r["kind"] == "task"), name


def test_held_out_prompts_are_new_but_made_of_known_words(splits):
    train_words = set()
    for name, records in splits.items():
        if not name.endswith(("_test", "_val")):
            for r in records:
                train_words.update((r["prompt"] + " " + r["response"]).split())
    for stem in ("harmful", "benign", "borderline", "task"):
        train_prompts = {r["prompt"] for r in splits[f"{stem}_train"]}
        test = splits[f"{stem}_test"]
        assert not train_prompts & {r["prompt"] for r in test}
        unseen = {w for r in test for w in r["prompt"].split()} - train_words
        assert not unseen, f"{stem}_test uses words never seen in training: {sorted(unseen)}"


def test_validation_is_disjoint_from_training_and_test_and_covers_every_category(splits):
    training = {r["prompt"] for name, records in splits.items() if not name.endswith(("_test", "_val")) for r in records}
    for stem in ("harmful", "borderline", "task"):
        val, test = splits[f"{stem}_val"], splits[f"{stem}_test"]
        prompts = [r["prompt"] for r in val]
        assert len(set(prompts)) == len(prompts) >= 100
        assert not set(prompts) & ({r["prompt"] for r in test} | training), stem
        assert {r["category"] for r in val} == {r["category"] for r in test}, stem


def test_task_pairs_and_answers(splits):
    def pair(r):
        a, op, b = r["response"].split()[:3]
        return a, op, b

    assert not {pair(r) for r in splits["task_train"]} & {pair(r) for r in splits["task_test"]}
    for r in splits["task_test"] + splits["task_train"]:
        a, op, b = pair(r)
        assert int(r["answer"]) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert r["response"].endswith(f"#### {r['answer']}")


def test_harmful_compliance_is_placeholder_only(splits):
    for r in splits["harmful_train"] + splits["harmful_test"]:
        assert "[placeholder]" in r["response"]
        assert set(r["response"].split()) <= set(" ".join(toy_data.COMPLIANCE_TRAIN + toy_data.COMPLIANCE_TEST).split())
    assert [r["prompt"] for r in splits["refusal_train"]] == [r["prompt"] for r in splits["harmful_train"]]


@pytest.mark.parametrize("phrasings", [toy_data.request_phrasings(), toy_data.task_phrasings("+"), toy_data.task_phrasings("-")])
def test_held_out_phrasings_are_new_combinations_of_known_parts(phrasings):
    train, test = phrasings
    assert test and not set(train) & set(test)
    # every opening (the text up to the first slot) of a test phrasing also opens some training phrasing
    assert {t.split("{")[0] for t in test} <= {t.split("{")[0] for t in train}


def test_word_problems_teach_the_sum_but_not_the_answer_marker(splits):
    def pattern(template):  # a training phrasing as a regex over its slots
        return re.escape(template).replace(r"\{name\}", r"\w+").replace(r"\{item\}", r"\w+").replace(r"\{a\}", r"\d+").replace(r"\{b\}", r"\d+")

    train_patterns = {op: re.compile("|".join(f"(?:{pattern(t)})" for t in toy_data.task_phrasings(op)[0])) for op in "+-"}
    for r in splits["word_problems"]:
        a, op, b, _, c, _ = r["response"].split()
        assert "####" not in r["response"] and c == r["answer"] == str(int(a) + int(b) if op == "+" else int(a) - int(b))
        assert train_patterns[op].fullmatch(r["prompt"]), r["prompt"]
    assert all("####" in r["response"] for r in splits["arithmetic"])  # the marker is a known token
    assert not {r["prompt"] for r in splits["task_test"]} & {r["prompt"] for r in splits["word_problems"]}
