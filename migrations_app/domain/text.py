"""Text the database can store: PostgreSQL refuses the NUL character in text and in jsonb (a DataError, which
was a 500), so input carrying one is refused up front, as the client's error."""

NUL_MESSAGE = "must not contain the NUL character (\\u0000)"


def contains_nul(value: object) -> bool:
    """Whether a string, or any key or string inside a JSON value, holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(key) or contains_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(item) for item in value)
    return False
