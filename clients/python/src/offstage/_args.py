"""How a Python call's ``*args, **kwargs`` become a task's JSON args, and back.

An Offstage task takes one JSON value. ``launch_background_task(name, *args, **kwargs)`` packs
the call into that value by one rule, and a Python worker unpacks it by the same rule, so the
decorated function is called exactly as it was launched:

============================================  ==================================  =================
launched as                                   args (JSON)                         worker calls
============================================  ==================================  =================
``launch(name)``                              ``null``                            ``f()``
``launch(name, a=1, b=2)``                    ``{"a": 1, "b": 2}``                ``f(a=1, b=2)``
``launch(name, 5)`` (one scalar)              ``5``                               ``f(5)``
``launch(name, 1, 2)`` (several)              ``[1, 2]``                          ``f(1, 2)``
``launch(name, 1, b=2)`` (both)               ``{"args": [1], "kwargs": {"b": 2}}``  ``f(1, b=2)``
``launch(name, [1, 2])`` (one list, dict      ``{"args": [[1, 2]], "kwargs": {}}``   ``f([1, 2])``
or ``None``)
============================================  ==================================  =================

The last row keeps the rule reversible: a lone list would read as several positionals, a lone
dict as keyword arguments and a lone ``None`` as no arguments. To send any JSON value exactly
as it is (for a task type written in Rust that takes an array, say), use
``Client.launch(name, args=value)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def pack(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The JSON args for a call with ``args`` and ``kwargs``."""
    if args and kwargs:
        return {"args": list(args), "kwargs": dict(kwargs)}
    if kwargs:
        if set(kwargs) == {"args", "kwargs"}:
            # Would read as the wrapped form: wrap it.
            return {"args": [], "kwargs": dict(kwargs)}
        return dict(kwargs)
    if not args:
        return None
    if len(args) == 1:
        (value,) = args
        if value is None or isinstance(value, (list, tuple, dict)):
            return {"args": [value], "kwargs": {}}
        return value
    return list(args)


def _is_wrapped(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"args", "kwargs"}
        and isinstance(value["args"], list)
        and isinstance(value["kwargs"], dict)
    )


def unpack(value: Any) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments that JSON args ``value`` stand for."""
    if value is None:
        return [], {}
    if _is_wrapped(value):
        return list(value["args"]), dict(value["kwargs"])
    if isinstance(value, dict):
        return [], dict(value)
    if isinstance(value, list):
        return list(value), {}
    return [value], {}


def call(function: Callable[..., Any], value: Any) -> Any:
    """Calls ``function`` with JSON args ``value`` unpacked by the rule above."""
    positional, keywords = unpack(value)
    return function(*positional, **keywords)


def check_json(value: Any, what: str) -> str:
    """``value`` as JSON text, or a ``TypeError`` that says what to do instead."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{what} must be JSON (dicts, lists, strings, numbers, booleans, None): {error}; "
            "convert it first, for example a datetime with .isoformat()"
        ) from None
