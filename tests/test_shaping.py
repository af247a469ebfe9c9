"""Token-level safety shaping: the loss against independent computations, and its two limits in training."""


import pytest
import torch
import torch.nn.functional as F

from safelora_lite.methods import shaping
from safelora_lite.worlds.toy import tokenizer as toy_tokenizer
from safelora_lite.worlds import toy as toy_world
from safelora_lite.adapters.lora_io import read_adapter
from safelora_lite.errors import InputError
from safelora_lite.training.sft import IGNORE_INDEX, collate, encode_records


class ConstantGuardrail:
    """Every token gets the same safety weight (a stand-in that needs no training)."""

    def __init__(self, w: float):
        self.w, self.key = w, f"constant-{w}"

    def safety_weights(self, context, response):
        return torch.full((len(response),), self.w)

    def batch_weights(self, input_ids, labels):
        return torch.where(labels != IGNORE_INDEX, torch.tensor(self.w), torch.tensor(1.0))


@pytest.fixture(scope="module")
def tokenizer():
    return toy_tokenizer.train_tokenizer(toy_tokenizer.corpus(toy_world.load_splits()))


@pytest.fixture(scope="module")
def fake_world(tokenizer, tmp_path_factory):
    """A ToyWorld whose aligned model is a tiny random Llama (no base model: shaping never reads it)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("fake_world")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root / "aligned")
    return toy_world.ToyWorld(toy_world.WorldConfig.small(), root, tokenizer)


@pytest.fixture(scope="module")
def batch(tokenizer):
    records = toy_world.load_split("harmful_train")[:2] + toy_world.load_split("task_train")[:2]
    return collate(encode_records(tokenizer, records), tokenizer.pad_token_id)


def test_all_safe_weights_give_the_usual_cross_entropy(fake_world, batch):
    model = fake_world.load_model()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss, parts = shaping.shaped_loss(logits, torch.randn_like(logits), batch["labels"], torch.ones(batch["labels"].shape), beta=3.0)
    reference = model(**batch).loss  # transformers' own causal LM loss
    torch.testing.assert_close(loss, reference, atol=1e-5, rtol=1e-5)
    assert parts["mean_weight"] == 1.0


def test_all_unsafe_weights_give_beta_times_kl_to_the_reference(fake_world, batch):
    logits = torch.randn(*batch["labels"].shape, 400)
    ref_logits = torch.randn_like(logits)
    beta = 0.7
    loss, _ = shaping.shaped_loss(logits, ref_logits, batch["labels"], torch.zeros(batch["labels"].shape), beta)
    mask = batch["labels"][:, 1:] != IGNORE_INDEX
    kl = F.kl_div(F.log_softmax(logits[:, :-1], -1), F.log_softmax(ref_logits[:, :-1], -1), log_target=True,
                  reduction="none").sum(-1)  # KL(ref || theta) per position
    torch.testing.assert_close(loss, beta * kl[mask].mean(), atol=1e-5, rtol=1e-5)
    same, _ = shaping.shaped_loss(logits, logits, batch["labels"], torch.zeros(batch["labels"].shape), beta)
    assert abs(float(same)) < 1e-6


def test_weights_mix_token_by_token(batch):
    logits, ref_logits = torch.randn(*batch["labels"].shape, 400), torch.randn(*batch["labels"].shape, 400)
    w = torch.rand(batch["labels"].shape)
    beta = 2.0
    loss, parts = shaping.shaped_loss(logits, ref_logits, batch["labels"], w, beta)
    total, n = 0.0, 0
    for i in range(w.shape[0]):
        for t in range(1, w.shape[1]):
            y = int(batch["labels"][i, t])
            if y == IGNORE_INDEX:
                continue
            logp, ref_logp = F.log_softmax(logits[i, t - 1], -1), F.log_softmax(ref_logits[i, t - 1], -1)
            ce, kl = -logp[y], (ref_logp.exp() * (ref_logp - logp)).sum()
            total, n = total + w[i, t] * ce + (1 - w[i, t]) * beta * kl, n + 1
    torch.testing.assert_close(loss, total / n, atol=1e-5, rtol=1e-5)
    assert 0.0 < parts["mean_weight"] < 1.0


def test_all_unsafe_weights_give_no_gradient_at_init(fake_world, batch):
    """w = 0: the loss is KL to the aligned model, which is 0 with gradient 0 while B = 0 (LoRA's init)."""
    from peft import LoraConfig, get_peft_model

    def grad_norm(w):
        torch.manual_seed(0)
        model = get_peft_model(fake_world.load_model(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
        objective = shaping.ShapedObjective(model, ConstantGuardrail(w), beta=1.0)
        loss = objective(**batch).loss
        loss.backward()
        return float(loss.detach()), sum(float(p.grad.norm()) for p in model.parameters() if p.requires_grad)

    loss0, g0 = grad_norm(0.0)
    loss1, g1 = grad_norm(1.0)
    assert abs(loss0) < 1e-6 and g0 < 1e-6
    assert loss1 > 1.0 and g1 > 1e-3


def test_shaped_training_writes_a_cached_adapter_with_its_report(fake_world):
    attack = toy_world.AttackConfig(kind="mixed", n_examples=16, steps=3, batch_size=4, seed=0)
    folder = shaping.train_shaped_lora(fake_world, attack, ConstantGuardrail(0.0), beta=1.0, progress=False)
    adapter = read_adapter(folder)
    assert adapter.config["r"] == attack.r and adapter.modules
    report = shaping.load_report(folder)
    assert report["beta"] == 1.0 and len(report["losses"]) == 3 and max(report["losses"]) < 1e-4
    assert report["guardrail_on_attack_data"]["mean_weight_unsafe_tokens"] == 0.0
    assert report["guardrail_on_attack_data"]["n_unsafe_tokens"] > 0
    assert shaping.train_shaped_lora(fake_world, attack, ConstantGuardrail(0.0), beta=1.0, progress=False) == folder  # cached


def test_all_safe_training_is_vanilla_lora(fake_world):
    """With w = 1 shaping is the plain attack: same data, seed and steps give the same adapter."""
    attack = toy_world.AttackConfig(kind="mixed", n_examples=16, steps=3, batch_size=4, seed=1)
    shaped = read_adapter(shaping.train_shaped_lora(fake_world, attack, ConstantGuardrail(1.0), beta=5.0, progress=False))
    vanilla = read_adapter(fake_world.train_attack(attack, progress=False))
    assert set(shaped.modules) == set(vanilla.modules)
    moved = 0.0
    for name, m in shaped.modules.items():
        torch.testing.assert_close(m.lora_b, vanilla.modules[name].lora_b, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(m.lora_a, vanilla.modules[name].lora_a, atol=1e-5, rtol=1e-4)
        moved = max(moved, float(m.lora_b.abs().max()))
    assert moved > 0  # it did train


@pytest.mark.parametrize("beta", [-1.0, float("nan")])
def test_bad_beta_is_refused(fake_world, beta):
    with pytest.raises(InputError):
        shaping.train_shaped_lora(fake_world, toy_world.AttackConfig(steps=1), ConstantGuardrail(1.0), beta=beta, progress=False)
