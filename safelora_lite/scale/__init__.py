"""The scale notebooks (09, 10): resumable fine-tuning of a real model pair and the pipeline around it."""
