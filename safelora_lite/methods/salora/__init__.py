"""SaLoRA: a fixed safety module and a task-informed init (model, features, export)."""
