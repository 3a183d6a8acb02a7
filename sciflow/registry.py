"""Name -> component registries, so configs can say ``path: affine`` and domains can add their own.

Every registry is keyed by a *kind* ("space", "path", "scheduler", "coupling", "sampler", "model",
"dataset", "time_sampler", "task", ...). Components register themselves with the decorator::

    @register("scheduler", "cond_ot")
    class CondOTScheduler(Scheduler): ...

Lookups import the core sub-packages lazily, so a name is found even if its module was never imported
by hand. Domain packages register their components when ``sciflow.domains.<name>`` is imported; a config
names its domain, and :func:`load_domain` imports it.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Dict

_REGISTRY: Dict[str, Dict[str, Any]] = {}
_CORE_PACKAGES = (
    "sciflow.spaces",
    "sciflow.paths",
    "sciflow.couplings",
    "sciflow.samplers",
    "sciflow.nn",
    "sciflow.datasets",
    "sciflow.metrics",
    "sciflow.guidance",
    "sciflow.tasks",
)
_core_loaded = False
#: modules that could not be imported (usually a missing optional dependency), with the reason
_IMPORT_FAILURES: Dict[str, str] = {}


def register(kind: str, name: str) -> Callable[[Any], Any]:
    """Decorator registering ``obj`` under ``(kind, name)``; duplicate names of one kind are an error."""

    def deco(obj: Any) -> Any:
        table = _REGISTRY.setdefault(kind, {})
        if name in table and table[name] is not obj:
            raise ValueError(f"{kind} '{name}' is already registered by {table[name]!r}")
        table[name] = obj
        return obj

    return deco


def _load_core() -> None:
    global _core_loaded
    if _core_loaded:
        return
    _core_loaded = True
    for pkg_name in _CORE_PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except ImportError:
            continue
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            try:
                importlib.import_module(info.name)
            except ImportError as err:  # an optional dependency is missing: report it on lookup failure
                _IMPORT_FAILURES[info.name] = str(err)


def load_domain(name: str) -> None:
    """Import ``sciflow.domains.<name>`` so that its components register themselves."""
    try:
        importlib.import_module(f"sciflow.domains.{name}")
    except ModuleNotFoundError as err:
        raise ValueError(
            f"domain '{name}' could not be imported ({err}); is its extra installed? "
            f"e.g. pip install 'sciflow[{name}]'"
        ) from err


def get(kind: str, name: str) -> Any:
    """Return the component registered as ``(kind, name)``; unknown names list the known ones."""
    _load_core()
    table = _REGISTRY.get(kind, {})
    if name not in table:
        known = ", ".join(sorted(table)) or "(none)"
        skipped = "".join(f"\n  (module {m} was not imported: {why})" for m, why in _IMPORT_FAILURES.items())
        raise ValueError(f"unknown {kind} '{name}'; registered {kind}s are: {known}{skipped}")
    return table[name]


def names(kind: str) -> list[str]:
    """Sorted names registered under ``kind``."""
    _load_core()
    return sorted(_REGISTRY.get(kind, {}))


def build(kind: str, name: str, **kwargs: Any) -> Any:
    """Instantiate the component ``(kind, name)`` with keyword arguments."""
    factory = get(kind, name)
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise TypeError(f"could not build {kind} '{name}' with arguments {sorted(kwargs)}: {err}") from err


def build_spec(kind: str, spec: Any, **overrides: Any) -> Any:
    """Build a component from a config spec: a registered name (``"cosine"``) or a mapping
    ``{"name": ..., **kwargs}``; ``overrides`` are merged into the keyword arguments. Anything else is a
    :class:`TypeError` naming ``kind``; callers pass ready-made objects through before calling this."""
    if isinstance(spec, str):
        return build(kind, spec, **overrides)
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ValueError(f"a {kind} mapping needs a 'name' key, got keys {sorted(spec)}")
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        kwargs.update(overrides)
        return build(kind, spec["name"], **kwargs)
    raise TypeError(f"{kind} must be a registered name, a mapping with 'name' or a {kind} object, "
                    f"got {type(spec).__name__}")
