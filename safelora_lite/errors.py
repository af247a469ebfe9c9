"""One exception type for bad input: a one-line message that names the problem and the fix."""


class InputError(ValueError):
    """Bad input from the user. The CLI prints it on one line and exits with status 2."""

    def __init__(self, problem: str, fix: str | None = None):
        message = problem if fix is None else f"{problem} Fix: {fix}"
        super().__init__(" ".join(message.split()))  # always a single line
