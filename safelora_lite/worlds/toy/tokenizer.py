"""A word-level tokenizer for the toy world, trained by the library and saved like any HF tokenizer.

Text is lower-cased and split on whitespace (the toy data already splits punctuation off), so one
word is one token. The chat template renders `<bos> user : PROMPT assistant : RESPONSE <eos>`.
Load it back with `transformers.AutoTokenizer.from_pretrained(folder)`.
"""

from collections.abc import Iterable

from safelora_lite.worlds.toy.splits import HELD_OUT

SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<bos>", "eos_token": "<eos>"}

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ message['role'] }} : {{ message['content'] }} "
    "{% if message['role'] == 'assistant' %}{{ eos_token }} {% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)


def train_tokenizer(texts: Iterable[str], min_frequency: int = 1):
    """Fit a word-level vocabulary on `texts`; return a transformers PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    core = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk_token"]))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # No decoder: decode() joins tokens with single spaces. (A WordPiece decoder would glue the
    # GSM8K answer marker "####" onto the word before it, since "##" is its continuation prefix.)
    trainer = trainers.WordLevelTrainer(special_tokens=specials, min_frequency=min_frequency)
    # Chat roles and ':' are always in the vocabulary; sorted: the same vocabulary whatever the order.
    core.train_from_iterator(sorted(texts) + ["system user assistant :"], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS, padding_side="left")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def corpus(splits: dict[str, list[dict]]) -> list[str]:
    """Every prompt and response of every split but the validation ones. Those came later, and word counts
    set the token ids: with them the same seed trains another world than the one the course was measured on,
    under the same cache key (the vocabulary is the same; the validation prompts use the same words)."""
    return [text for name, records in splits.items() if name not in HELD_OUT["validation"]
            for r in records for text in (r["prompt"], r["response"])]

