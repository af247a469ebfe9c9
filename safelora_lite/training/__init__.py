"""Training: the supervised fine-tuning loop, cached runs with their curves, and the GPU memory planner."""
