"""plugin.yaml manifests: loading, entry-point discovery and registration in a host.

A plugin describes itself in a ``plugin.yaml`` manifest and advertises it
through the entry-point group :data:`ENTRY_POINT_GROUP`. Each entry point
names a callable that returns the manifest's path. A host lists the plugins it
wants in its configuration and calls :func:`register_plugins`:

.. code-block:: python

    app.config["PLUGINS"] = ["dicom-mappings"]
    app.config["PLUGIN_OPTIONS"] = {"dicom-mappings": {"host": MyHost(), "engine": engine}}
    extensions = register_plugins(app)
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .errors import DicomMappingsError

log = logging.getLogger(__name__)

#: Entry-point group under which installed plugins publish their manifest.
ENTRY_POINT_GROUP = "xnat_dicom_mappings.plugins"

#: Host configuration key: the plugins to register, each a plugin id or the
#: path of a plugin.yaml file.
PLUGINS_CONFIG_KEY = "PLUGINS"

#: Host configuration key: keyword arguments for each plugin's extension
#: class, keyed by plugin id.
PLUGIN_OPTIONS_CONFIG_KEY = "PLUGIN_OPTIONS"

_REQUIRED_KEYS = ("id", "name", "version", "package", "extension")


class PluginError(DicomMappingsError):
    """A manifest that cannot be read or a plugin that cannot be registered."""


@dataclass(frozen=True)
class PluginManifest:
    """The contents of one plugin.yaml, with its package paths resolved."""

    id: str
    name: str
    version: str
    description: str
    package: str
    #: "module:attribute" of the extension class.
    extension: str
    url_prefix: str | None
    admin_page: str | None
    required_role: str | None
    hooks: Mapping[str, Any]
    config_prefix: str | None
    config_keys: tuple[str, ...]
    #: Alembic script folder inside the package, or None when the manifest has none.
    migrations: Path | None
    #: Template folder inside the package, or None when the manifest has none.
    templates: Path | None
    #: The manifest file this was read from.
    source: Path
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    def load_extension(self) -> type:
        """Import and return the extension class named by ``extension``."""
        module_name, _, attribute = self.extension.partition(":")
        if not module_name or not attribute:
            raise PluginError(
                f"plugin {self.id!r}: extension {self.extension!r} is not of the form "
                f"'module:attribute'; fix the 'extension' key of {self.source}"
            )

        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(
                f"plugin {self.id!r}: cannot import {module_name!r} ({exc}); "
                f"install the package that provides it"
            ) from exc

        try:
            return getattr(module, attribute)
        except AttributeError:
            raise PluginError(
                f"plugin {self.id!r}: module {module_name!r} has no attribute {attribute!r}; "
                f"fix the 'extension' key of {self.source}"
            ) from None


def manifest_path() -> Path:
    """Return the path of this package's own plugin.yaml (the entry point's target)."""
    return Path(str(resources.files(__package__) / "plugin.yaml"))


def load_manifest(path: str | os.PathLike) -> PluginManifest:
    """Read and check one plugin.yaml.

    Raises:
        PluginError: the file is missing, is not YAML, lacks a required key
            (id, name, version, package, extension) or has a value of the wrong type.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise PluginError(f"cannot read plugin manifest {source}: {exc.strerror}") from exc

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PluginError(f"plugin manifest {source} is not valid YAML: {exc}") from exc

    if not isinstance(data, dict):
        raise PluginError(f"plugin manifest {source} must be a YAML mapping at the top level")

    missing = [key for key in _REQUIRED_KEYS if not data.get(key)]
    if missing:
        raise PluginError(f"plugin manifest {source} is missing the keys: {', '.join(missing)}")

    config = data.get("config") or {}
    hooks = data.get("hooks") or {}
    if not isinstance(config, dict) or not isinstance(hooks, dict):
        raise PluginError(f"plugin manifest {source}: 'config' and 'hooks' must be mappings")

    config_keys = config.get("keys") or []
    if not isinstance(config_keys, list) or not all(isinstance(k, str) for k in config_keys):
        raise PluginError(f"plugin manifest {source}: 'config.keys' must be a list of names")

    package = str(data["package"])
    return PluginManifest(
        id=str(data["id"]),
        name=str(data["name"]),
        version=str(data["version"]),
        description=str(data.get("description") or ""),
        package=package,
        extension=str(data["extension"]),
        url_prefix=data.get("urlPrefix"),
        admin_page=data.get("adminPage"),
        required_role=data.get("requiredRole"),
        hooks=hooks,
        config_prefix=config.get("prefix"),
        config_keys=tuple(config_keys),
        migrations=_package_path(package, data.get("migrations")),
        templates=_package_path(package, data.get("templates")),
        source=source,
        raw=data,
    )


def _package_path(package: str, relative: str | None) -> Path | None:
    # The package is located from its spec, without importing it, so that reading a
    # manifest never runs the plugin's code.
    if not relative:
        return None

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None

    return Path(next(iter(spec.submodule_search_locations))) / relative


def discover(group: str = ENTRY_POINT_GROUP) -> dict[str, PluginManifest]:
    """Return the manifests of every installed plugin, keyed by plugin id.

    Each entry point of ``group`` must name a callable that returns the path of
    a plugin.yaml (a ``str`` or ``os.PathLike``). An entry point that fails to
    load is logged at WARNING and left out, so one broken plugin does not hide
    the others. Two plugins with the same id raise :class:`PluginError`.
    """
    manifests: dict[str, PluginManifest] = {}
    for entry_point in metadata.entry_points(group=group):
        try:
            target = entry_point.load()
            path = target() if callable(target) else target
            manifest = load_manifest(path)
        except (ImportError, AttributeError, TypeError, PluginError) as exc:
            log.warning("plugin entry point %r of group %s failed to load: %s",
                        entry_point.value, group, exc)
            continue

        if manifest.id in manifests:
            raise PluginError(
                f"two installed plugins have the id {manifest.id!r}: "
                f"{manifests[manifest.id].source} and {manifest.source}; uninstall one"
            )
        manifests[manifest.id] = manifest

    return manifests


def resolve_manifests(names: Iterable[str], group: str = ENTRY_POINT_GROUP) -> list[PluginManifest]:
    """Return the manifests for ``names``, each a plugin id or a plugin.yaml path.

    Ids are looked up among the installed plugins (:func:`discover`) and this
    package's own manifest.

    Raises:
        PluginError: a name is neither an installed plugin's id nor a readable file.
    """
    installed: dict[str, PluginManifest] | None = None
    result = []
    for name in names:
        if name.endswith((".yaml", ".yml")) or os.sep in name:
            result.append(load_manifest(name))
            continue

        if installed is None:
            installed = discover(group)
            # A checkout used without `pip install` publishes no entry points,
            # so this package's own manifest is added by its path.
            own = load_manifest(manifest_path())
            installed.setdefault(own.id, own)
        if name not in installed:
            known = ", ".join(sorted(installed)) or "none"
            raise PluginError(
                f"plugin {name!r} is not installed (installed plugins: {known}); "
                f"install it or give the path of its plugin.yaml"
            )
        result.append(installed[name])

    return result


def register_plugins(
    app,
    names: Iterable[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Create and initialise the extension of every plugin that the host names.

    ``names`` defaults to ``app.config["PLUGINS"]`` and ``options`` to
    ``app.config["PLUGIN_OPTIONS"]``. For each manifest the extension class is
    imported, called with that plugin's options as keyword arguments, and
    ``init_app(app)`` is called on the instance.

    Returns:
        The extension instances keyed by plugin id, in the order named.
    """
    if names is None:
        names = app.config.get(PLUGINS_CONFIG_KEY, [])
    if options is None:
        options = app.config.get(PLUGIN_OPTIONS_CONFIG_KEY, {})

    extensions: dict[str, Any] = {}
    for manifest in resolve_manifests(names):
        extension_class = manifest.load_extension()
        extension = extension_class(**dict(options.get(manifest.id, {})))
        extension.init_app(app)
        extensions[manifest.id] = extension
        log.info("registered plugin %s %s from %s", manifest.id, manifest.version, manifest.source)

    return extensions
