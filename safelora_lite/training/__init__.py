"""Training loops: supervised fine-tuning on chat records, and resumable LoRA fine-tuning."""
