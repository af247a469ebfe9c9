"""Worlds: a base and an aligned checkpoint, a tokenizer, data splits, attacks and one evaluation."""
