"""The device helpers' thread policy: small decompositions run in one math thread; a course run's idle cores go to
big models' inference."""

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


def test_lora_training_does_not_depend_on_the_thread_count():
    """Why a granted core may join a real model's training midway: three LoRA steps (q/v, r 8, the response-only
    loss, clipping, AdamW) give the same adapter on one and on two threads, bit for bit."""
    from peft import LoraConfig, get_peft_model

    from safelora_lite.training.sft import optimizer_step

    before, adapters = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            model = get_peft_model(_real_shaped_model(), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
            for p in model.parameters():
                if p.requires_grad:  # B starts at zero; a nonzero B makes every product matter from the first step
                    torch.nn.init.normal_(p, std=0.02)
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=2e-4)
            steps = torch.Generator().manual_seed(1)
            for _ in range(3):
                ids = torch.randint(1, 49152, (8, 48), generator=steps)  # (batch, seq)
                labels = ids.clone()
                labels[:, :24] = -100  # the prompt half: no loss
                optimizer_step(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels},
                               optimizer, params, response_logits=True)
            adapters.append({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(adapters[0][n], adapters[1][n]) for n in adapters[0])
