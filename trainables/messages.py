"""Generic text for people: an error as one line, a duration as a clock (a leaf: no imports)."""

from __future__ import annotations

__all__ = ["clock", "first_line", "last_line"]

MAX_CHARS = 500  # an error line longer than this is cut


def first_line(error: BaseException, typed: bool = False) -> str:
    """The first line of an error's text, or its type's name when it has none; ``typed`` puts
    the type's name first (``ValueError: ...``) for errors raised by code the user wrote."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if typed or not text:
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text[:MAX_CHARS]


def last_line(error) -> str:
    """The last line of an error's text (a traceback's last line names the exception)."""
    lines = str(error).strip().splitlines()
    return lines[-1][:MAX_CHARS] if lines else type(error).__name__


def clock(seconds: float) -> str:
    """``3h05m``, ``12m30s`` or ``45s``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
