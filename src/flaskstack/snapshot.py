"""The plan as the supervisor holds it: its values, without the classes that made them.

The supervisor's process lives as long as the stack, and every module it imports stays in its
memory. The plan's classes bring :mod:`dataclasses` (with :mod:`inspect`), :mod:`typing` and the
settings' declarations: about 5 MB of a 12 MB process (docs/benchmarks/memory-and-cpu.md). So
``serve`` hands the supervisor a :class:`Snapshot` of the plan, read the same way
(``plan.nginx.cache.path``, ``plan.services``, ``plan.probe.url``) but holding only plain values,
together with the whole plan pickled: the forked children that check and render the
configuration, or make the plan again, load that (:func:`.process.in_child`).
"""

from __future__ import annotations

import pickle

TYPE_CHECKING = False  # (the supervisor's process never loads typing: see exits.py)
if TYPE_CHECKING:
    from .host import HostFacts
    from .plan import Plan


class Snapshot:
    """A dataclass instance's fields and properties (or the settings' values) as read-only
    attributes."""

    def __init__(self, kind: str, values: dict[str, object]) -> None:
        self.__dict__.update(values)
        self.__dict__["_kind"] = kind

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a snapshot of the plan is read-only: cannot set {name}")

    def __reduce__(self) -> tuple[type[Snapshot], tuple[str, dict[str, object]]]:
        values = {k: v for k, v in self.__dict__.items() if k != "_kind"}
        return Snapshot, (self.__dict__["_kind"], values)

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if k != "_kind")
        return f"{self.__dict__['_kind']}({values})"


def take(value: object) -> object:
    """``value`` with every dataclass instance in it, and the settings, made a
    :class:`Snapshot`; what cannot be held without its class is a :class:`TypeError`."""
    import dataclasses
    from pathlib import PurePath

    from .rundir import RunDir
    from .settings import Settings

    if value is None or isinstance(value, bool | PurePath | RunDir):
        return value
    for plain in (str, int, float):  # (a str subclass of the settings' becomes a str)
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, tuple | list | set | frozenset):
        return type(value)(take(v) for v in value)
    if isinstance(value, dict):
        return {take(k): take(v) for k, v in value.items()}
    if isinstance(value, Settings):
        return Snapshot("Settings", {**{k: take(v) for k, v in value.values.items()},
                                     "sources": take(value.sources)})
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        values = {f.name: take(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for klass in type(value).__mro__:
            for name, attribute in vars(klass).items():
                if isinstance(attribute, property) and name not in values:
                    values[name] = take(getattr(value, name))
        return Snapshot(type(value).__name__, values)
    raise TypeError(f"the supervisor cannot hold a value of type {type(value).__name__}")


def pack(plan: Plan, facts: HostFacts) -> bytes:
    """What the supervisor is handed: the plan's snapshot, and the whole plan pickled with the
    host's facts (see :func:`unpack`)."""
    whole = pickle.dumps((plan, facts), protocol=pickle.HIGHEST_PROTOCOL)
    return pickle.dumps((take(plan), whole), protocol=pickle.HIGHEST_PROTOCOL)


def unpack(whole: bytes) -> tuple[Plan, HostFacts]:
    """The whole plan and the host's facts, in a process that may load their classes."""
    plan, facts = pickle.loads(whole)
    return plan, facts
