"""The one exception type meant for users.

Anything a user can cause (a bad file, a wrong option) raises `RandomMaskError` with a one-line
message naming the file, line or record and what is wrong. The CLI prints the message and exits
non-zero; any other exception is a bug in randommask.
"""


class RandomMaskError(Exception):
    """A user-facing error with a one-line message."""

    def __init__(self, message: str) -> None:
        # One line: the CLI prints it as-is, and multi-line messages hide the cause.
        super().__init__(" ".join(str(message).split("\n")))
