"""Loaders for the real data formats people bring, into the toy world's records.

Every loader returns records {"prompt", "response", "kind", "category", "answer"} like
`toy_world.load_split`, so the same training and evaluation code runs on them.
  AdvBench CSV         columns goal,target                       -> kind "harmful"
  GSM8K JSONL          {"question", "answer": "... #### 72"}     -> kind "task", answer "72"
  Alpaca JSON          [{"instruction", "input", "output"}, ...] -> kind "benign"
  chat-message JSONL   {"messages": [{"role", "content"}, ...]}  -> the last user turn and the
                       assistant answer after it; optional top-level "kind" and "category"
A malformed file raises InputError naming the file, the line (or item) and what is wrong.
"""

import csv
import json
import os
from pathlib import Path

from safelora_lite.errors import InputError
from safelora_lite.evaluation.judges import extract_answer

KINDS = ("harmful", "benign", "borderline", "task")


def _record(prompt, response, kind, category, answer=None) -> dict:
    return {"prompt": prompt, "response": response, "kind": kind, "category": category, "answer": answer}


def _open(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} not found.", "check the path.")
    return path


def _text(value, where: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: field {field!r} is missing or empty.", f"give every record a non-empty {field!r} string.")
    return value.strip()


def _jsonl(path: Path):
    """(line number, parsed object) for each non-blank line."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} line {n}: not valid JSON ({e.msg}).", "write one JSON object per line.") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path} line {n}: expected a JSON object, got {type(obj).__name__}.", "write one JSON object per line.")
        yield n, obj


def load_advbench(path: str | os.PathLike, category: str = "advbench") -> list[dict]:
    """AdvBench `harmful_behaviors.csv`: goal (the request), target (the affirmative opening)."""
    path = _open(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"goal", "target"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{path} line 1: header lacks {sorted(missing)} (found {reader.fieldnames}).", "use the AdvBench header goal,target.")
        records = []
        for row in reader:
            where = f"{path} line {reader.line_num}"
            if None in row or any(v is None for v in row.values()):
                raise InputError(f"{where}: expected 2 columns (goal,target).", "quote fields that contain commas.")
            records.append(_record(_text(row["goal"], where, "goal"), _text(row["target"], where, "target"), "harmful", category))
    return records


def load_gsm8k(path: str | os.PathLike, category: str = "gsm8k") -> list[dict]:
    """GSM8K JSONL: question, answer (worked solution ending `#### N`); `answer` of the record is N."""
    path = _open(path)
    records = []
    for n, obj in _jsonl(path):
        where = f"{path} line {n}"
        question, answer = _text(obj.get("question"), where, "question"), _text(obj.get("answer"), where, "answer")
        final = extract_answer(answer)
        if final is None:
            raise InputError(f"{where}: answer does not end with '#### <number>'.", "end each GSM8K answer with '#### N'.")
        records.append(_record(question, answer, "task", category, final))
    return records


def load_alpaca(path: str | os.PathLike, kind: str = "benign", category: str = "alpaca") -> list[dict]:
    """Alpaca JSON (a list of {instruction, input, output}); a non-empty input follows the instruction."""
    path = _open(path)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path} line {e.lineno}: not valid JSON ({e.msg}).", "Alpaca data is one JSON list of objects.") from None
    if not isinstance(items, list):
        raise InputError(f"{path}: expected a JSON list of objects, got {type(items).__name__}.", "Alpaca data is one JSON list of objects.")
    records = []
    for i, item in enumerate(items):
        where = f"{path} item {i}"
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected an object, got {type(item).__name__}.", "each item needs instruction, input, output.")
        instruction = _text(item.get("instruction"), where, "instruction")
        extra = item.get("input", "")
        if not isinstance(extra, str):
            raise InputError(f"{where}: field 'input' must be a string.", "use \"\" when there is no input.")
        prompt = f"{instruction}\n\n{extra.strip()}" if extra.strip() else instruction
        records.append(_record(prompt, _text(item.get("output"), where, "output"), kind, category))
    return records


def load_chat(path: str | os.PathLike, kind: str = "benign", category: str = "chat") -> list[dict]:
    """Chat-message JSONL: each line {"messages": [...]} ending with an assistant turn after a user turn."""
    path = _open(path)
    records = []
    for n, obj in _jsonl(path):
        where = f"{path} line {n}"
        messages = obj.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InputError(f"{where}: no 'messages' list.", 'write {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}.')
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
                raise InputError(f"{where}: each message needs a role (system, user or assistant) and a content string.", "fix that message.")
        if messages[-1]["role"] != "assistant" or len(messages) < 2 or messages[-2]["role"] != "user":
            raise InputError(f"{where}: the conversation must end with a user turn and then an assistant turn.", "put the answer to learn last.")
        record_kind = obj.get("kind", kind)
        if record_kind not in KINDS:
            raise InputError(f"{where}: unknown kind {record_kind!r}.", f"use one of: {', '.join(KINDS)}.")
        answer = obj.get("answer")
        records.append(_record(_text(messages[-2]["content"], where, "content"), _text(messages[-1]["content"], where, "content"),
                               record_kind, obj.get("category", category), None if answer is None else str(answer)))
    return records
