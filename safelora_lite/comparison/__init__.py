"""Comparing methods: the frozen protocols, their runs and sweeps, beside the controls."""
