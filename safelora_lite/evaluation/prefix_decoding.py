"""Greedy decoding of a batch whose prompts all start with the same tokens (a chat template's system prompt).

The shared start is run once, at batch 1, and its keys and values copied to every row; each row's padding then
sits between them and the row's own tokens, so positions come from the attention mask, as in `generate`. Two
things `transformers`' `generate` does not do, and which change no token (tests/test_generation.py):

- the cache is allocated once with room for every new token, and a step writes its token in place
  (`RoomyLayer`), where the default cache copies all of it (`torch.cat`) at every step of every layer;
- rows that have ended (their end-of-sequence token) leave the batch once they are a quarter of it, so that
  later steps run on the rows still answering.
"""

import torch
from transformers.cache_utils import Cache, DynamicLayer

DROP_SHARE = 0.25  # finished rows leave the batch once they are this share of the rows still in it


class RoomyLayer(DynamicLayer):
    """One layer's keys and values in buffers with room for `room` more tokens than the first update brings:
    `keys` and `values` are views of the filled part, and an update writes in place (a full buffer grows)."""

    def __init__(self, room: int):
        super().__init__()
        self.room = room
        self.length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        new = key_states.shape[-2]  # key_states: (batch, kv_heads, new, head_dim)
        if not self.is_initialized or self.length + new > self._keys.shape[-2]:
            self._grow(key_states, value_states, self.length + new + self.room)
        self._keys[..., self.length: self.length + new, :] = key_states
        self._values[..., self.length: self.length + new, :] = value_states
        self.length += new
        self._views()
        return self.keys, self.values

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, capacity: int) -> None:
        """Buffers of `capacity` tokens holding what the layer has so far."""
        shape = (*key_states.shape[:-2], capacity, key_states.shape[-1])
        keys, values = key_states.new_empty(shape), value_states.new_empty(shape)
        if self.is_initialized:
            keys[..., : self.length, :] = self.keys
            values[..., : self.length, :] = self.values
        self.device, self._keys, self._values, self.is_initialized = key_states.device, keys, values, True

    def _views(self) -> None:
        self.keys = self._keys[..., : self.length, :]
        self.values = self._values[..., : self.length, :]

    def get_seq_length(self) -> int:
        return self.length

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._keys = self._keys.repeat_interleave(repeats, dim=0)
        self._values = self._values.repeat_interleave(repeats, dim=0)
        self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys, self._values = self._keys[indices], self._values[indices]
        self._views()


@torch.no_grad()
def greedy_after_prefix(model, input_ids: torch.Tensor, mask: torch.Tensor, k: int, max_new_tokens: int, eos: int,
                        pad: int, keyword: str = "cache") -> torch.Tensor:
    """Greedy new tokens (batch, max_new_tokens), `pad` after a row's `eos`. `input_ids` and `mask` (batch, width):
    the k tokens every row starts with, then the row's padding (mask 0), then the rest of the row. `keyword` is
    the model's name for its cache argument."""
    batch, width = input_ids.shape
    layers = model.config.get_text_config().num_hidden_layers
    cache = Cache(layers=[RoomyLayer(width - k + max_new_tokens) for _ in range(layers)])
    model(input_ids=input_ids[:1, :k], use_cache=True, **{keyword: cache})  # the shared start, once
    cache.batch_repeat_interleave(batch)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # (batch, width): padding takes no position
    logits = model(input_ids=input_ids[:, k:], attention_mask=mask, position_ids=positions[:, k:], use_cache=True,
                   logits_to_keep=1, **{keyword: cache}).logits[:, -1]  # (batch, vocab)
    out = torch.full((batch, max_new_tokens), pad, dtype=input_ids.dtype, device=input_ids.device)
    rows = torch.arange(batch, device=input_ids.device)  # the rows still in the batch
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    last = positions[:, -1]
    for step in range(max_new_tokens):
        token = torch.where(finished, pad, logits.float().argmax(-1))  # (rows,)
        out[rows, step] = token
        finished = finished | (token == eos)
        if step == max_new_tokens - 1 or bool(finished.all()):
            break
        if int(finished.sum()) >= DROP_SHARE * len(rows):
            keep = (~finished).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, token, mask, last, finished = rows[keep], token[keep], mask[keep], last[keep], finished[keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        last = last + 1
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=last[:, None], use_cache=True,
                       **{keyword: cache}).logits[:, -1]
    return out
