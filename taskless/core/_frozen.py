"""A faster ``__init__`` for the frozen dataclasses built on every request and delivery.

A frozen dataclass's ``__init__`` stores each field with ``object.__setattr__(self, name,
value)``: a lookup of the attribute through the class for every field, which makes it cost
three to four times a plain class's. :func:`fast_init` writes the same ``__init__`` (same
parameters, defaults and default factories) storing through the slots' own descriptors
(``slots=True``) or straight into the instance ``__dict__``. Instances are the same: still
frozen, equal, hashed and printed as before.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen dataclass ``cls`` a faster ``__init__`` of the same signature.

    Apply it above ``@dataclass(frozen=True, ...)``. Only plain classes are accepted: every
    field in ``__init__``, positional, no ``InitVar`` and no ``__post_init__``.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    original = cls.__dict__["__init__"]
    parameters_now = list(inspect.signature(original).parameters.values())[1:]
    if (
        hasattr(cls, "__post_init__")
        or [p.name for p in parameters_now] != [f.name for f in fields]  # InitVar, init=False
        or any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in parameters_now)  # kw_only
    ):
        raise TypeError(f"fast_init does not handle {cls.__name__}: write its __init__ by hand")
    slotted = "__slots__" in cls.__dict__
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    parameters, body = [], []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            parameters.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            parameters.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING:\n        {f.name} = _factory_{f.name}()")
        else:
            parameters.append(f.name)
    if slotted:
        for f in fields:
            if f.name not in cls.__dict__:  # a field of a base class
                raise TypeError(f"fast_init does not handle {cls.__name__}: inherited fields")
            namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
            body.append(f"    _set_{f.name}(self, {f.name})")
    else:
        body.append(
            "    self.__dict__.update(" + ", ".join(f"{f.name}={f.name}" for f in fields) + ")"
        )
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)  # noqa: S102 - our own text, as dataclasses writes __init__
    init = namespace["__init__"]
    init.__qualname__ = original.__qualname__
    init.__module__ = original.__module__
    init.__annotations__ = dict(original.__annotations__)
    init.__doc__ = original.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
