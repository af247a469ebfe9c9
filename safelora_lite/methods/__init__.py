"""The methods that keep safety while fine-tuning with LoRA, one module (or package) each."""
