"""The scale notebooks (08, 09): resumable fine-tuning of a real model pair and the pipeline around it."""
