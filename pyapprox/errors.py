"""User-facing errors: one clear line, with optional tool output underneath."""


class PyapproxError(Exception):
    """An error caused by the user's input or environment, reported without a traceback.

    ``message`` is one line naming the file/module/port/value and what would be valid;
    ``detail`` is optional extra text (e.g. a simulator's own message) shown indented below it.
    """

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        if not self.detail:
            return self.message
        body = "\n".join("    " + line for line in self.detail.rstrip().splitlines())
        return f"{self.message}\n{body}"
