"""The maths every method stands on: Safe LoRA projectors and scores, E-DIEM, toy matrices (no models, no I/O)."""
