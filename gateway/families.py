"""Line families: which plug-in drives which kind of line, found by name, imported when used.

The table below is the one place where the gateway names its drivers (the
model is python-can's ``can/interfaces/__init__.py`` BACKENDS)::

    family   config section   module               class
    gsm      [[modems]]       drivers.gsm.family   GsmFamily
    e1       [[spans]]        drivers.e1.family    E1Family

A family's module is imported only when a configuration uses its section
(or someone asks for the family by name), so a family whose optional
dependency is missing costs nothing until it is configured, and then fails
with a ``FamilyUnavailableError`` that names the family and what is missing.

A family object (``LineFamily``) says which config section it reads, turns
one entry of that section into its ``LineSettings`` (raising
``ConfigError`` with the entry's key path), and builds a ``LineDriver``
from settings, the gateway's emit callback, its audio sink factory and the
board's power control of the line (``power``: a
``firmware_py.recovery.BoardModemPower``, which a family without power
steps ignores; GSM hands it to its recovery ladder).
``register_family`` adds a family at run time (a site plug-in, a test).
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

from gateway.audio.contract import AudioSinkFactory
from gateway.lines import Emit, LineDriver, LineSettings

if TYPE_CHECKING:
    from firmware_py.recovery import BoardModemPower

SettingsT = TypeVar("SettingsT", bound=LineSettings)


class FamilyEntry(NamedTuple):
    section: str  # the configuration's array of tables: "modems" for [[modems]]
    module: str  # imported on first use
    class_name: str  # a LineFamily subclass in that module


_FAMILIES: dict[str, FamilyEntry] = {
    "gsm": FamilyEntry("modems", "drivers.gsm.family", "GsmFamily"),
    "e1": FamilyEntry("spans", "drivers.e1.family", "E1Family"),
}
_loaded: dict[str, LineFamily[Any]] = {}
_lock = threading.RLock()  # a family's module may register more while it loads


class LineFamily(ABC, Generic[SettingsT]):
    """One kind of line: its config section, its settings and how to build its driver."""

    name: ClassVar[str]  # as in the registry: "gsm"
    section: ClassVar[str]  # "modems"
    line_noun: ClassVar[str]  # "modem", in messages such as "duplicate modem name"

    @abstractmethod
    def validate(self, source: str, key: str, entry: Any) -> SettingsT:
        """One entry of the section as settings; ``ConfigError(source, key + ..., ...)`` if bad.

        ``key`` is the entry's path (``modems[0]``); a problem names the key
        below it (``modems[0].port``) and what was expected.
        """

    @abstractmethod
    def build_driver(
        self,
        settings: SettingsT,
        emit: Emit,
        audio_sink_factory: AudioSinkFactory | None,
        power: BoardModemPower | None = None,
    ) -> LineDriver:
        """The line's driver (not started). ``audio_sink_factory`` is None without audio;
        ``power`` is the board's power control of the line (None: none at all)."""


class UnknownFamilyError(LookupError):
    """No family of that name is registered."""

    def __init__(self, name: str) -> None:
        self.family = name
        known = ", ".join(sorted(_FAMILIES)) or "none"
        super().__init__(f"no line family {name!r} (known families: {known})")


class FamilyUnavailableError(ImportError):
    """A registered family whose module cannot be imported or is not a family."""

    def __init__(self, name: str, entry: FamilyEntry, problem: str) -> None:
        self.family = name
        self.entry = entry
        super().__init__(
            f"line family {name!r} ([[{entry.section}]], {entry.module}) is not available: "
            f"{problem}"
        )


def families() -> dict[str, FamilyEntry]:
    """The registered families by name (a copy), without importing any."""
    with _lock:
        return dict(_FAMILIES)


def family_sections() -> Mapping[str, str]:
    """Config section -> family name, for every registered family, without importing any."""
    with _lock:
        return {entry.section: name for name, entry in _FAMILIES.items()}


def get_family(name: str) -> LineFamily[Any]:
    """The family called ``name``, its module imported on first use.

    Raises ``UnknownFamilyError`` for a name not registered and
    ``FamilyUnavailableError`` when its module cannot be imported (naming the
    missing module) or does not hold the family class the table names.
    """
    with _lock:
        family = _loaded.get(name)
        if family is not None:
            return family
        entry = _FAMILIES.get(name)
        if entry is None:
            raise UnknownFamilyError(name)
        family = _load(name, entry)
        _loaded[name] = family
        return family


def register_family(name: str, section: str, module: str, class_name: str) -> None:
    """Register a family (imported only when used). Registering the same entry again is a no-op.

    Raises ``ValueError`` when ``name`` or ``section`` already belong to
    another entry.
    """
    entry = FamilyEntry(section, module, class_name)
    with _lock:
        existing = _FAMILIES.get(name)
        if existing == entry:
            return
        if existing is not None:
            raise ValueError(f"line family {name!r} is already registered ({existing.module})")
        for other, registered in _FAMILIES.items():
            if registered.section == section:
                raise ValueError(f"config section {section!r} already belongs to family {other!r}")
        _FAMILIES[name] = entry


def unregister_family(name: str) -> None:
    """Forget a family registered at run time (and its loaded object). Unknown names are ignored."""
    with _lock:
        _FAMILIES.pop(name, None)
        _loaded.pop(name, None)


def _load(name: str, entry: FamilyEntry) -> LineFamily[Any]:
    try:
        module = importlib.import_module(entry.module)
    except ImportError as error:
        missing = error.name or str(error)
        if entry.module == missing or entry.module.startswith(missing + "."):
            problem = f"its module {entry.module} is not installed"
        else:
            problem = f"it needs {missing!r}, which is not installed ({error})"
        raise FamilyUnavailableError(name, entry, problem) from error
    family_class = getattr(module, entry.class_name, None)
    if not (isinstance(family_class, type) and issubclass(family_class, LineFamily)):
        problem = f"{entry.module} has no LineFamily class {entry.class_name!r}"
        raise FamilyUnavailableError(name, entry, problem)
    family: LineFamily[Any] = family_class()
    if (family.name, family.section) != (name, entry.section):
        problem = (
            f"{entry.module}.{entry.class_name} says it is family {family.name!r} "
            f"of section {family.section!r}"
        )
        raise FamilyUnavailableError(name, entry, problem)
    return family
