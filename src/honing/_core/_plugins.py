"""Plugins: installed packages that add stages, compression steps or model formats.

A package declares an entry point in the group ``honing.plugins``::

    [project.entry-points."honing.plugins"]
    my_plugin = "my_package.honing_plugin:register"

and ``register()`` calls the public registration functions (``honing.pipeline.register_stage``,
``honing.pipeline.register_compress_step``, ``honing.artifacts.register_format``, ...).
The CLI, ``honing.pipeline.run``, ``train_once`` and ``compress_folder`` load them once per
process, before the recipe is read. Only installed packages are loaded: a recipe cannot name
code to import.
"""

from __future__ import annotations

from importlib import metadata

from honing._core._errors import ConfigError

GROUP = "honing.plugins"
_loaded: set[str] = set()  # entry points already registered in this process (each registers once)


def load_plugins() -> list[str]:
    """Register every installed plugin not registered yet; returns the names loaded now."""
    done = []
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        key = f"{ep.name}={ep.value}"
        if key in _loaded:
            continue
        _loaded.add(key)
        try:
            register = ep.load()
            register()
        except Exception as err:
            raise ConfigError(f"invalid plugin {ep.name!r} ({ep.value}, entry point group {GROUP!r}): "
                              f"{type(err).__name__}: {err}; allowed: an installed package whose register() "
                              "calls honing's register_* functions (or uninstall it)") from None
        done.append(ep.name)
    return done
