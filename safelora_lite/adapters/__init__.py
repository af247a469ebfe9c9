"""Adapters and checkpoints: PEFT LoRA I/O, streamed checkpoint weights, model loading, the controls."""
