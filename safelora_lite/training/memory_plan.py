"""Predict the GPU memory of a LoRA fine-tuning step, and pick settings that fit a given GPU.

References: the activation count follows what PyTorch autograd actually saves in transformers'
LlamaForCausalLM with peft LoRA (frozen linear layers save no input; RMSNorm upcasts to fp32; peft
keeps adapters in fp32 and casts each LoRA input to fp32; SDPA saves q, k, v, out and the log-sum-exp).
`saved_activation_bytes` measures the same quantity on any device, so the formula is tested on the CPU.

Memory of one step = weights + LoRA (params + grads + AdamW state, fp32) + activations + logits/loss.
Tokens = batch * seq_len. All figures in bytes; `GiB = 2**30`.
"""

from dataclasses import asdict, dataclass

import torch

from safelora_lite.errors import InputError

GiB = 2**30
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# Usable GPU sizes (GiB as the driver reports them are a little under the label) and whether bf16 runs natively.
GPUS = {
    "T4 16 GB": (15.0, False),
    "24 GB (L4 / A10G / RTX 4090)": (22.0, True),
    "A100 40 GB": (39.4, True),
    "A100 / H100 80 GB": (79.2, True),
}
CUDA_CONTEXT = 0.6 * GiB  # the CUDA context and kernels; outside torch.cuda.max_memory_allocated
PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _get(config, key):
    return config[key] if isinstance(config, dict) else getattr(config, key)


def shapes(config) -> dict:
    """h, kv (= k/v output width), i, L, V, heads from a LlamaConfig or a dict."""
    h = _get(config, "hidden_size")
    heads = _get(config, "num_attention_heads")
    kv_heads = _get(config, "num_key_value_heads") or heads
    return dict(h=h, kv=h // heads * kv_heads, i=_get(config, "intermediate_size"), L=_get(config, "num_hidden_layers"),
                V=_get(config, "vocab_size"), heads=heads, head_dim=h // heads)


def module_dims(config) -> dict[str, tuple[int, int]]:
    """(d_in, d_out) of each projection in one decoder layer."""
    s = shapes(config)
    h, kv, i = s["h"], s["kv"], s["i"]
    return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def count_parameters(config) -> dict:
    """Parameters: embeddings + lm_head (untied), the projections of all layers, the norms."""
    s = shapes(config)
    per_layer_linear = sum(d_in * d_out for d_in, d_out in module_dims(config).values())
    linear = s["L"] * per_layer_linear
    embed = 2 * s["V"] * s["h"]
    norms = (2 * s["L"] + 1) * s["h"]
    return {"linear": linear, "embed": embed, "norms": norms, "total": linear + embed + norms}


def lora_parameters(config, rank: int, target_modules) -> int:
    """r * (d_in + d_out) per adapted module, in every layer."""
    dims = module_dims(config)
    unknown = [m for m in target_modules if m not in dims]
    if unknown:
        raise InputError(f"unknown target module {unknown[0]!r}.", f"use names from {', '.join(PROJ)}.")
    return shapes(config)["L"] * sum(rank * sum(dims[m]) for m in target_modules)


def _lora_input_bytes(config, target_modules, compute_bytes: int, rank: int, dropout: bool) -> int:
    """Per token per layer: what the LoRA branches save (their fp32 input and the r-wide A output)."""
    dims = module_dims(config)
    total = 4 * rank * len(target_modules)
    if compute_bytes == 4 and not dropout:
        # fp32 model: no cast, modules that read the same tensor share it.
        groups = {"attn_in" if m in ("q_proj", "k_proj", "v_proj") else "mlp_in" if m in ("gate_proj", "up_proj") else m
                  for m in target_modules}
        return total + sum(4 * (shapes(config)["h"] if g in ("attn_in", "mlp_in", "o_proj") else shapes(config)["i"]) for g in groups)
    per_byte = 5 if dropout else 4  # dropout: its fp32 output plus a 1-byte mask
    return total + sum(per_byte * dims[m][0] for m in target_modules)


def activation_bytes_per_token(config, precision: str, rank: int, target_modules, gradient_checkpointing: bool = False,
                               dropout: bool = False) -> dict:
    """Saved activations per token: one layer, all layers, and the non-layer part (final norm, rope, loss)."""
    s = shapes(config)
    e = BYTES[precision]
    layer = (2 * (4 * s["h"] + 4)  # two RMSNorms save their fp32 input and 1/rms
             + _lora_input_bytes(config, target_modules, e, rank, dropout)
             + e * (2 * s["h"] + 2 * s["kv"]) + 4 * s["heads"]  # SDPA: q, k, v, out, log-sum-exp
             + 3 * e * s["i"])  # SwiGLU: gate out, silu(gate), up out
    outside = (4 * s["h"] + 4) + 2 * e * s["head_dim"] + 4 * s["V"] + 8  # final norm, cos/sin, fp32 log-softmax, labels
    if gradient_checkpointing:  # each layer keeps only its input; backward recomputes one layer at a time
        saved_layers, recompute = s["L"] * e * s["h"], layer
    else:  # layer 0's first norm saves nothing: the frozen embedding output needs no gradient
        saved_layers, recompute = s["L"] * layer - (4 * s["h"] + 4), 0
    return {"per_layer": layer, "layers": saved_layers, "outside": outside, "saved": saved_layers + outside,
            "recompute": recompute, "peak": saved_layers + outside + recompute}


@dataclass
class MemoryPlan:
    """Predicted memory of one LoRA training step, in bytes, and the settings it assumes."""

    weights: int
    lora: int  # LoRA parameters (fp32)
    gradients: int  # of the LoRA parameters (fp32)
    optimizer: int  # AdamW exp_avg and exp_avg_sq (fp32)
    activations: int  # saved for backward
    logits: int  # transient: logits, their fp32 copy and gradient at the start of backward
    seq_len: int
    batch: int
    rank: int
    precision: str
    quantization: str | None
    gradient_checkpointing: bool

    @property
    def total(self) -> int:
        return self.weights + self.lora + self.gradients + self.optimizer + self.activations + self.logits

    def parts_gib(self) -> dict:
        return {k: getattr(self, k) / GiB for k in ("weights", "lora", "gradients", "optimizer", "activations", "logits")}

    def row(self) -> dict:
        return {**asdict(self), "total": self.total, "total_gib": round(self.total / GiB, 2)}


def weight_bytes(config, precision: str, quantization: str | None) -> int:
    """Frozen weights: the projections at 16/32 bits, ~8.1 bits (8-bit) or ~4.13 bits (nf4 + double quant)."""
    n = count_parameters(config)
    e = BYTES[precision]
    if quantization in (None, "none"):
        return n["total"] * e
    # 8-bit: 1 byte plus a per-row scale; nf4: 0.5 byte plus an 8-bit absmax per 64 weights (double quant)
    per_linear = {"8bit": 1.0 + 4 / 2048, "4bit": 0.5 + 1 / 64}[quantization]
    largest = max(d_in * d_out for d_in, d_out in module_dims(config).values())
    # embeddings, lm_head and norms stay in the compute dtype; one projection is dequantized at a time
    return int(n["linear"] * per_linear) + (n["embed"] + n["norms"] + largest) * e


def plan(config, seq_len: int = 512, batch: int = 1, rank: int = 16, target_modules=("q_proj", "v_proj"),
         precision: str = "bf16", quantization: str | None = None, gradient_checkpointing: bool = False,
         dropout: bool = False) -> MemoryPlan:
    """Predict the memory of one LoRA step for a Llama-family config."""
    if precision not in BYTES:
        raise InputError(f"unknown precision {precision!r}.", "use 'bf16', 'fp16' or 'fp32'.")
    if quantization not in (None, "none", "8bit", "4bit"):
        raise InputError(f"unknown quantization {quantization!r}.", "use None, '8bit' or '4bit'.")
    if seq_len < 1 or batch < 1 or rank < 1:
        raise InputError(f"seq_len={seq_len}, batch={batch}, rank={rank}: each must be at least 1.")
    tokens = seq_len * batch
    n_lora = lora_parameters(config, rank, target_modules)
    act = activation_bytes_per_token(config, precision, rank, target_modules, gradient_checkpointing, dropout)
    e = BYTES[precision]
    V = shapes(config)["V"]
    return MemoryPlan(
        weights=weight_bytes(config, precision, quantization), lora=4 * n_lora, gradients=4 * n_lora,
        optimizer=8 * n_lora, activations=act["peak"] * tokens, logits=(e + 4 + e) * V * tokens,
        seq_len=seq_len, batch=batch, rank=rank, precision=precision,
        quantization=None if quantization == "none" else quantization, gradient_checkpointing=gradient_checkpointing)


def budget(gpu_gib: float, headroom: float = 0.9) -> float:
    """Bytes a plan may use on a GPU of `gpu_gib`: `headroom` of what the CUDA context leaves."""
    return headroom * (gpu_gib * GiB - CUDA_CONTEXT)


def gpu_row(label: str, gpu_gib: float, p: MemoryPlan, headroom: float = 0.9) -> dict:
    """One table row: a plan on a GPU, and whether it fits."""
    return {"gpu": label, "gpu_gib": gpu_gib, "fits": p.total <= budget(gpu_gib, headroom), **p.row(), "plan": p}


def fit_settings(config, gpus: dict | None = None, seq_len: int = 512, rank: int = 16, target_modules=("q_proj", "v_proj"),
                 batches=(8, 4, 2, 1), headroom: float = 0.9) -> list[dict]:
    """For each GPU, the first setting that fits, in order of preference.

    Preference: no quantization before 8-bit before 4-bit (quality), no gradient checkpointing before
    checkpointing (speed), then the largest batch. The plan must fit in `headroom` of the GPU after
    the CUDA context. bf16 where the GPU has it, fp16 otherwise (T4).
    """
    rows = []
    for gpu, (size_gib, has_bf16) in (gpus or GPUS).items():
        limit = budget(size_gib, headroom)
        precision = "bf16" if has_bf16 else "fp16"
        chosen = None
        for quant in (None, "8bit", "4bit"):
            for ckpt in (False, True):
                for batch in batches:
                    p = plan(config, seq_len, batch, rank, target_modules, precision, quant, ckpt)
                    if p.total <= limit:
                        chosen = p
                        break
                if chosen:
                    break
            if chosen:
                break
        if chosen is None:
            chosen = plan(config, seq_len, min(batches), rank, target_modules, precision, "4bit", True)
        rows.append(gpu_row(gpu, size_gib, chosen, headroom))
    return rows


def plan_table(rows: list[dict]) -> str:
    """A plain-text table of fit_settings rows (or plan rows with a 'gpu' label)."""
    head = f"{'GPU':<30}{'fits':>5}{'dtype':>6}{'quant':>6}{'ckpt':>6}{'batch':>6}{'weights':>9}{'LoRA+opt':>9}{'activ.':>8}{'logits':>8}{'total GiB':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        p = r["plan"]
        g = p.parts_gib()
        lines.append(f"{r['gpu']:<30}{'yes' if r['fits'] else 'NO':>5}{p.precision:>6}{p.quantization or '-':>6}"
                     f"{'on' if p.gradient_checkpointing else 'off':>6}{p.batch:>6}{g['weights']:>9.2f}"
                     f"{g['lora'] + g['gradients'] + g['optimizer']:>9.2f}{g['activations']:>8.2f}{g['logits']:>8.2f}{p.total / GiB:>10.2f}")
    return "\n".join(lines)


def plot_plan(rows: list[dict], ax=None, title: str | None = None):
    """Stacked horizontal bars (weights, LoRA + optimiser, activations, logits) with each GPU's size marked."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.6 + 0.55 * len(rows)))
    parts = [("weights", "weights"), ("LoRA + grads + AdamW", ("lora", "gradients", "optimizer")),
             ("activations", "activations"), ("logits / loss", "logits")]
    labels = [f"{r['gpu']}\n{r['plan'].precision}, {r['plan'].quantization or 'no quant'}, batch {r['plan'].batch}"
              f"{', ckpt' if r['plan'].gradient_checkpointing else ''}" for r in rows]
    left = [0.0] * len(rows)
    for label, keys in parts:
        keys = (keys,) if isinstance(keys, str) else keys
        widths = [sum(r["plan"].parts_gib()[k] for k in keys) for r in rows]
        ax.barh(labels, widths, left=left, label=label)
        left = [a + b for a, b in zip(left, widths)]
    for y, r in enumerate(rows):
        if "gpu_gib" in r:
            ax.plot([r["gpu_gib"]] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
    ax.set_xlabel("GiB (black tick: the GPU's memory)")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def saved_activation_bytes(model, **batch) -> int:
    """Measure what autograd saves for backward in one forward pass (parameters excluded, shared storage counted once)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch)
    return sum(seen.values())


def measured_step(model, seq_len: int, batch: int, device: torch.device | None = None, steps: int = 3, lr: float = 1e-4) -> dict:
    """Time LoRA training steps on random tokens; on CUDA also the peak memory (torch.cuda.max_memory_allocated)."""
    import time

    device = device or next(model.parameters()).device
    vocab = model.config.vocab_size
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    ids = torch.randint(0, vocab, (batch, seq_len), device=device)
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(steps):
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    out = {"step_seconds": min(times[1:] or times), "first_step_seconds": times[0]}
    if device.type == "cuda":
        out["peak_bytes"] = torch.cuda.max_memory_allocated(device)
    return out
