"""The registry of a person's data-export sections: each domain registers, by function reference,
the part of "everything held about them" that it owns (``retreat.privacy.export`` puts them together).

It lives in ``core`` for the same reason ``core.jobs`` does: the domains that own the data sit below
``privacy`` in the layers, so they register here and ``privacy`` reads the registry::

    from retreat.core import personal_data
    personal_data.register_section("payments", payments_section, title="Payments and refunds",
                                   covers=("payments", "refunds", "ledger_entries"), order=60)

A section is ``fn(person, *, ctx, now) -> dict``: the keys it adds to the export (JSON-able; every key
unique across sections). ``covers`` names the tables whose rows about the person it exports: the
completeness test checks that every table pointing at a person is covered or explicitly excluded.
Registering a name again replaces it (module reloads in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SectionFn = Callable[..., dict]


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    build: SectionFn
    covers: tuple[str, ...]
    order: int


_REGISTRY: dict[str, Section] = {}


def register_section(name: str, fn: SectionFn, *, title: str, covers: tuple[str, ...] = (),
                     order: int = 100) -> SectionFn:
    """Add ``fn`` as the export section ``name`` (shown under ``title``); returns ``fn``."""
    if not callable(fn):
        raise TypeError(f"export section {name!r}: {fn!r} is not callable")
    _REGISTRY[name] = Section(name, title, fn, tuple(covers), order)
    return fn


def sections() -> list[Section]:
    """The registered sections, in their display order."""
    return sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))


def covered_tables() -> set[str]:
    return {t for s in _REGISTRY.values() for t in s.covers}


def unregister_section(name: str) -> None:
    _REGISTRY.pop(name, None)
