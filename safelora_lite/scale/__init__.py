"""Real model shapes on one GPU: the memory planner and the pipeline of the scale notebooks."""
