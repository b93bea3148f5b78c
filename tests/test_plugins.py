"""plugin.yaml: loading, entry-point discovery and registration in a host app."""

from __future__ import annotations

import configparser
import importlib
import importlib.metadata
import logging
import textwrap
from pathlib import Path

import pytest
from flask import Flask

from xnat_dicom_mappings import config as plugin_config
from xnat_dicom_mappings.plugins import (
    ENTRY_POINT_GROUP,
    PluginError,
    discover,
    load_manifest,
    manifest_path,
    register_plugins,
    resolve_manifests,
)

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL_MANIFEST = ROOT / "plugin.yaml"


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser


def _write_plugin(tmp_path: Path, monkeypatch, *, plugin_id: str, module: str,
                  entry_target: str | None = None, dist: str = "fake-plugin") -> Path:
    """Install a fake plugin on sys.path: a module, its plugin.yaml and a dist-info with an entry point."""
    package_dir = tmp_path / module
    package_dir.mkdir()
    manifest = package_dir / "plugin.yaml"
    manifest.write_text(textwrap.dedent(f"""\
        id: {plugin_id}
        name: Fake plugin
        version: 2.0.0
        package: {module}
        extension: {module}:FakeExtension
        config:
          prefix: FAKE_
          keys: [FAKE_OPTION]
        templates: templates
    """), encoding="utf-8")
    (package_dir / "__init__.py").write_text(textwrap.dedent("""\
        from pathlib import Path

        def manifest_path():
            return Path(__file__).parent / "plugin.yaml"

        class FakeExtension:
            def __init__(self, **options):
                self.options = options
                self.apps = []

            def init_app(self, app):
                self.apps.append(app)
                app.extensions["fake"] = self
    """), encoding="utf-8")

    dist_info = tmp_path / f"{dist.replace('-', '_')}-2.0.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 2.0.0\n", encoding="utf-8"
    )
    target = entry_target or f"{module}:manifest_path"
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{plugin_id} = {target}\n", encoding="utf-8"
    )

    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return manifest


# The manifest of this package


def test_manifest_loads():
    manifest = load_manifest(TOP_LEVEL_MANIFEST)

    assert manifest.id == "dicom-mappings"
    assert manifest.package == "xnat_dicom_mappings"
    assert manifest.extension == "xnat_dicom_mappings:DicomMappings"
    assert manifest.url_prefix == "/xapi/dicom_mappings"
    assert manifest.admin_page == "/admin/dicom-mappings"
    assert manifest.required_role == "Administrator"
    assert manifest.hooks["archive"]["method"] == "extract_session"
    assert manifest.config_prefix == "DICOM_MAPPINGS_"


def test_manifest_version_matches_setup_cfg():
    manifest = load_manifest(TOP_LEVEL_MANIFEST)

    assert manifest.version == _setup_cfg()["metadata"]["version"]


def test_packaged_manifest_is_top_level():
    assert manifest_path().read_bytes() == TOP_LEVEL_MANIFEST.read_bytes()


def test_manifest_config_keys_match_config_module():
    manifest = load_manifest(TOP_LEVEL_MANIFEST)

    assert set(manifest.config_keys) == set(plugin_config.defaults())
    assert all(key.startswith(manifest.config_prefix) for key in manifest.config_keys)


def test_manifest_defaults_match_config_module():
    manifest = load_manifest(TOP_LEVEL_MANIFEST)
    defaults = plugin_config.defaults()

    assert manifest.url_prefix == defaults["DICOM_MAPPINGS_URL_PREFIX"]
    assert manifest.admin_page == defaults["DICOM_MAPPINGS_ADMIN_URL"]


def test_manifest_paths_exist():
    manifest = load_manifest(TOP_LEVEL_MANIFEST)

    assert (manifest.migrations / "env.py").is_file()
    assert list((manifest.migrations / "versions").glob("*.py"))
    assert (manifest.templates / "dicom_mappings" / "admin.html").is_file()


def test_manifest_extension_and_hook_import():
    from xnat_dicom_mappings import DicomMappings

    manifest = load_manifest(TOP_LEVEL_MANIFEST)
    extension_class = manifest.load_extension()

    assert extension_class is DicomMappings
    assert callable(getattr(extension_class, manifest.hooks["archive"]["method"]))

    module_name, _, attribute = manifest.hooks["archive"]["signal"].partition(":")
    assert hasattr(importlib.import_module(module_name), attribute)


# Manifest errors


def test_load_manifest_missing_file(tmp_path):
    with pytest.raises(PluginError, match="cannot read plugin manifest"):
        load_manifest(tmp_path / "absent.yaml")


def test_load_manifest_invalid_yaml(tmp_path):
    path = tmp_path / "plugin.yaml"
    path.write_text("id: [unclosed\n", encoding="utf-8")

    with pytest.raises(PluginError, match="not valid YAML"):
        load_manifest(path)


def test_load_manifest_not_a_mapping(tmp_path):
    path = tmp_path / "plugin.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")

    with pytest.raises(PluginError, match="must be a YAML mapping"):
        load_manifest(path)


def test_load_manifest_missing_keys(tmp_path):
    path = tmp_path / "plugin.yaml"
    path.write_text("id: x\nname: X\n", encoding="utf-8")

    with pytest.raises(PluginError, match="missing the keys: version, package, extension"):
        load_manifest(path)


def test_load_manifest_bad_config_keys(tmp_path):
    path = tmp_path / "plugin.yaml"
    path.write_text("id: x\nname: X\nversion: '1'\npackage: x\nextension: 'x:X'\n"
                    "config:\n  keys: FAKE_ONE\n", encoding="utf-8")

    with pytest.raises(PluginError, match="'config.keys' must be a list"):
        load_manifest(path)


def test_load_extension_bad_path(tmp_path):
    path = tmp_path / "plugin.yaml"
    path.write_text("id: x\nname: X\nversion: '1'\npackage: x\nextension: no_colon\n",
                    encoding="utf-8")

    with pytest.raises(PluginError, match="not of the form 'module:attribute'"):
        load_manifest(path).load_extension()


# Entry points


def test_setup_cfg_declares_entry_point():
    entry_points = _setup_cfg()["options.entry_points"][ENTRY_POINT_GROUP]

    assert "xnat_dicom_mappings.plugins:manifest_path" in entry_points


def test_discover_finds_entry_point(tmp_path, monkeypatch):
    manifest = _write_plugin(tmp_path, monkeypatch, plugin_id="fake-plugin", module="fake_plugin_a")

    found = discover()

    assert "fake-plugin" in found
    assert found["fake-plugin"].source == manifest
    assert found["fake-plugin"].version == "2.0.0"
    assert found["fake-plugin"].templates == tmp_path / "fake_plugin_a" / "templates"


def test_discover_skips_broken_entry_point(tmp_path, monkeypatch, caplog):
    _write_plugin(tmp_path, monkeypatch, plugin_id="broken", module="fake_plugin_b",
                  entry_target="no_such_module_xdm:manifest_path")

    with caplog.at_level(logging.WARNING, logger="xnat_dicom_mappings.plugins"):
        found = discover()

    assert "broken" not in found
    assert "no_such_module_xdm:manifest_path" in caplog.text


def test_discover_duplicate_id(tmp_path, monkeypatch):
    first = tmp_path / "first"
    second = tmp_path / "second"
    first.mkdir()
    second.mkdir()
    _write_plugin(first, monkeypatch, plugin_id="twin", module="fake_plugin_c", dist="twin-one")
    _write_plugin(second, monkeypatch, plugin_id="twin", module="fake_plugin_d", dist="twin-two")

    with pytest.raises(PluginError, match="two installed plugins have the id 'twin'"):
        discover()


def test_installed_distribution_is_discovered():
    try:
        importlib.metadata.distribution("xnat-dicom-mappings")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("xnat-dicom-mappings is not pip-installed here; `make venv` installs it")

    found = discover()

    assert found["dicom-mappings"].version == _setup_cfg()["metadata"]["version"]


def test_resolve_own_id_without_installation():
    manifests = resolve_manifests(["dicom-mappings"])

    assert [m.id for m in manifests] == ["dicom-mappings"]


def test_resolve_unknown_plugin():
    with pytest.raises(PluginError, match="plugin 'no-such-plugin' is not installed"):
        resolve_manifests(["no-such-plugin"])


# Registration


def test_register_by_id(tmp_path, monkeypatch):
    _write_plugin(tmp_path, monkeypatch, plugin_id="fake-plugin", module="fake_plugin_e")
    app = Flask(__name__)
    app.config["PLUGINS"] = ["fake-plugin"]
    app.config["PLUGIN_OPTIONS"] = {"fake-plugin": {"colour": "blue"}}

    extensions = register_plugins(app)

    assert extensions["fake-plugin"] is app.extensions["fake"]
    assert extensions["fake-plugin"].options == {"colour": "blue"}
    assert extensions["fake-plugin"].apps == [app]


def test_register_by_manifest_path(tmp_path, monkeypatch):
    manifest = _write_plugin(tmp_path, monkeypatch, plugin_id="fake-plugin", module="fake_plugin_f")
    app = Flask(__name__)

    extensions = register_plugins(app, [str(manifest)], {})

    assert list(extensions) == ["fake-plugin"]
    assert app.extensions["fake"] is extensions["fake-plugin"]


def test_register_dicom_mappings(db_url, tmp_path):
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config["PLUGINS"] = ["dicom-mappings"]
    app.config["PLUGIN_OPTIONS"] = {"dicom-mappings": {"engine": engine}}

    try:
        extensions = register_plugins(app)
        rules = {rule.rule for rule in app.url_map.iter_rules()}
    finally:
        engine.dispose()

    assert type(extensions["dicom-mappings"]).__name__ == "DicomMappings"
    assert "/xapi/dicom_mappings" in rules or "/xapi/dicom_mappings/" in rules
    assert any(rule.startswith("/admin/dicom-mappings") for rule in rules)
