"""The args rule: a Python call packs into one JSON value and unpacks into the same call."""

from __future__ import annotations

import json
from typing import Any

import pytest

from offstage import _args


@pytest.mark.parametrize(
    "args, kwargs, packed",
    [
        ((), {}, None),
        ((), {"a": 1, "b": 2}, {"a": 1, "b": 2}),
        ((5,), {}, 5),
        (("x",), {}, "x"),
        ((1, 2), {}, [1, 2]),
        ((1,), {"b": 2}, {"args": [1], "kwargs": {"b": 2}}),
        (([1, 2],), {}, {"args": [[1, 2]], "kwargs": {}}),
        (({"a": 1},), {}, {"args": [{"a": 1}], "kwargs": {}}),
        ((None,), {}, {"args": [None], "kwargs": {}}),
        ((), {"args": [1], "kwargs": {}}, {"args": [], "kwargs": {"args": [1], "kwargs": {}}}),
    ],
)
def test_pack_then_unpack_is_the_same_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], packed: Any
) -> None:
    assert _args.pack(args, kwargs) == packed
    # Through JSON, as the server stores it.
    positional, keywords = _args.unpack(json.loads(json.dumps(packed)))
    assert (positional, keywords) == (
        [list(a) if isinstance(a, tuple) else a for a in args],
        kwargs,
    )


def test_raw_values_unpack_naturally() -> None:
    assert _args.unpack({"to": 3}) == ([], {"to": 3})
    assert _args.unpack([1, 2]) == ([1, 2], {})
    assert _args.unpack("x") == (["x"], {})
    assert _args.call(lambda a, b=0: a + b, {"args": [1], "kwargs": {"b": 2}}) == 3


def test_not_json_says_what_to_do() -> None:
    with pytest.raises(TypeError, match="isoformat"):
        _args.check_json({"when": object()}, "the task's args")
