"""Job functions that RQ workers import by dotted path."""


def noop() -> None:
    """Do nothing; the RQ counterpart of aegis's built-in `noop` job type."""
