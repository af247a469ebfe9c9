"""Evaluation: batched greedy generation and the judges that turn responses into rates."""
