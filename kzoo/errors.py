"""The one exception type that the CLI turns into a single error line (exit 2)."""


class KzooError(ValueError):
    """A problem with what the user asked for: bad data, flag, preset or file."""
