"""The device helpers' thread policy: small decompositions run in one math thread; a course run's idle cores go to
big models' inference, never to training."""

import torch

from safelora_lite.device import one_thread_if_small, single_thread


def test_small_decompositions_run_in_one_thread_and_the_count_comes_back():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread_if_small(torch.empty(576, 576)):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with one_thread_if_small(torch.empty(4096, 4096, device="meta")):  # a 7B module: every thread
            assert torch.get_num_threads() == 2
        with single_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_course_run_grants_idle_cores_to_big_models_only(tmp_path, monkeypatch):
    from safelora_lite.device import GRANT_VARIABLE, GrantedThreads, granted_threads

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.delenv(GRANT_VARIABLE, raising=False)
        assert granted_threads() is None  # outside a course run: nothing changes
        with GrantedThreads(135_000_000):
            assert torch.get_num_threads() == 1
        grant = tmp_path / "thread_grant"
        monkeypatch.setenv(GRANT_VARIABLE, str(grant))
        assert granted_threads() is None  # the runner has not written it (or it is gone): no grant
        grant.write_text("1\n")
        with GrantedThreads(135_000_000) as threads:
            assert torch.get_num_threads() == 1
            grant.write_text("2\n")  # the other notebook finished
            threads.refresh()
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
        with GrantedThreads(430_000) as threads:  # a toy model keeps its one thread
            threads.refresh()
            assert torch.get_num_threads() == 1
        grant.write_text("not a number")
        assert granted_threads() is None
    finally:
        torch.set_num_threads(before)


def _real_shaped_model(seed: int = 0):
    """SmolLM2-135M's widths and vocabulary, one layer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=1, num_attention_heads=9,
                                        num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True))


def test_greedy_answers_do_not_depend_on_the_thread_count():
    """Why a granted core may join an evaluation midway: one and two threads give a real model's shapes the same
    logits and answers, bit for bit."""
    model = _real_shaped_model().eval()
    ids = torch.randint(1, 49152, (16, 20))  # (batch, width)
    mask = torch.ones_like(ids)
    mask[:4, :6] = 0  # left padding, as evaluation batches have
    before, runs = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits  # (batch, width, vocab)
                tokens = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
            runs.append((logits, tokens))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_training_keeps_its_thread_count_under_a_grant(small_world, tmp_path, monkeypatch):
    """A LoRA update can differ in its last bits between one and two threads (it did on an AVX-512 Xeon), so a big
    model's training keeps its one thread when a course run grants two: an update never depends on when the
    notebook beside it finished. (The model: the toy tokenizer's vocabulary, 12M parameters, so it counts as big.)"""
    from transformers import LlamaConfig, LlamaForCausalLM

    from safelora_lite.device import GRANT_VARIABLE
    from safelora_lite.training.sft import train
    from safelora_lite.worlds import toy as tw

    grant = tmp_path / "thread_grant"
    grant.write_text("2\n")
    monkeypatch.setenv(GRANT_VARIABLE, str(grant))
    model = LlamaForCausalLM(LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=1, num_attention_heads=8,
                                         vocab_size=len(small_world.tokenizer)))
    assert sum(p.numel() for p in model.parameters()) >= 10_000_000
    before, seen = torch.get_num_threads(), []
    torch.set_num_threads(1)
    try:
        train(model, small_world.tokenizer, tw.load_split("task_train")[:4], steps=2, lr=1e-4, batch_size=2, progress=False,
              callback=lambda step, loss: seen.append(torch.get_num_threads()))
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1]
