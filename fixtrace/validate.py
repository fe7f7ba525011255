"""Argument checks shared by the Python API and the command line: each raises OptionError with one
line naming the argument (and its command-line flag) and what it accepts."""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from fixtrace.errors import OptionError


def _label(name: str, flag: str | None) -> str:
    return f"{name} ({flag})" if flag else name


def choice(name: str, value: Any, choices: Iterable[str], flag: str | None = None) -> str:
    """``value`` normalised (case, ``_`` for ``-``) to one of ``choices``.

    Raises:
        OptionError: not a string, or not one of the choices.
    """
    options = list(choices)
    if not isinstance(value, str):
        raise OptionError(f"{_label(name, flag)} must be one of {', '.join(options)}, not {type(value).__name__}")
    wanted = value.strip().lower().replace("_", "-")
    for option in options:
        if option.lower() == wanted:
            return option
    close = difflib.get_close_matches(wanted, options, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise OptionError(f"unknown {name} {value!r}{hint}; {name}s: {', '.join(options)}")


def integer(name: str, value: Any, minimum: int | None = None, maximum: int | None = None, flag: str | None = None) -> int:
    """``value`` as an int within bounds (bools and floats refused).

    Raises:
        OptionError: not an integer, or out of bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise OptionError(f"{_label(name, flag)} must be a whole number, not {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise OptionError(f"{_label(name, flag)} must be {bounds}, not {value}")
    return value


def number(
    name: str, value: Any, low: float, high: float, flag: str | None = None, low_open: bool = True, what: str = ""
) -> float:
    """``value`` as a finite float in (low, high] (or [low, high] when not ``low_open``).

    Raises:
        OptionError: not a real number, not finite, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionError(f"{_label(name, flag)} must be a number, not {value!r}")
    value = float(value)
    inside = (value > low if low_open else value >= low) and value <= high
    if not math.isfinite(value) or not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise OptionError(f"{_label(name, flag)} must be {what or 'a number'} in {interval}, not {value}")
    return value


def boolean(name: str, value: Any) -> bool:
    """``value`` if it is a bool (numpy bools too).

    Raises:
        OptionError: anything else (a string "no" is not False).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise OptionError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def text(name: str, value: Any, flag: str | None = None) -> str | None:
    """``value`` if it is None or a non-empty string.

    Raises:
        OptionError: anything else.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise OptionError(f"{_label(name, flag)} must be a non-empty name, not {value!r}")
    return value


def keywords(given: dict[str, Any], allowed: Iterable[str], where: str) -> None:
    """Refuse keyword arguments ``where`` does not take, suggesting the closest one.

    Raises:
        OptionError: naming the unknown keyword and the accepted ones.
    """
    options = sorted(allowed)
    for key in given:
        if key not in options:
            close = difflib.get_close_matches(key, options, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise OptionError(f"{where} takes no argument {key!r}{hint}; it takes {', '.join(options)}")
