"""A wheel built from the checkout carries its templates and migrations and works when installed.

The wheel is built without build isolation and installed without dependencies,
so nothing is downloaded: the fresh virtual environment reaches the
dependencies through a .pth file that names this environment's
site-packages, after its own site-packages, so the installed wheel is what
gets imported.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: What the build reads from the checkout; the rest (.venv, .git, tests) stays out.
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "plugin.yaml", "templates",
           "xnat_dicom_mappings", "MANIFEST.in", "LICENSE")


def _run(*command, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the checkout, so the build leaves nothing in it."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.exists():
            shutil.copy2(path, source / name, follow_symlinks=False)

    dist = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(source),
         cwd=source)
    wheels = list(dist.glob("xnat_dicom_mappings-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed and no access to the checkout."""
    target = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"

    purelib = _run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=target).stdout.strip()
    (Path(purelib) / "test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )

    _run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--quiet", str(wheel), cwd=target)
    return target


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "xnat_dicom_mappings/plugin.yaml" in names
    assert "xnat_dicom_mappings/templates/dicom_mappings/admin.html" in names
    assert "xnat_dicom_mappings/migrations/env.py" in names
    assert "xnat_dicom_mappings/migrations/alembic.ini" in names
    assert any(name.startswith("xnat_dicom_mappings/migrations/versions/") and name.endswith(".py")
               for name in names)
    assert any(name.startswith("xnat_dicom_mappings/static/") for name in names)
    assert not any(name.startswith(("tests/", "examples/")) for name in names)


def test_wheel_plugin_yaml_is_a_file(wheel):
    with zipfile.ZipFile(wheel) as archive:
        packaged = archive.read("xnat_dicom_mappings/plugin.yaml")

    assert packaged == (ROOT / "plugin.yaml").read_bytes()


def test_wheel_entry_points(wheel):
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(archive.read(name).decode() for name in archive.namelist()
                            if name.endswith(".dist-info/entry_points.txt"))

    assert "[xnat_dicom_mappings.plugins]" in entry_points
    assert "xnat_dicom_mappings.plugins:manifest_path" in entry_points
    assert "xnat-dicom-mappings = xnat_dicom_mappings.cli:main" in entry_points


def test_installed_cli_help(fresh_venv):
    result = _run(str(fresh_venv / "bin" / "xnat-dicom-mappings"), "--help", cwd=fresh_venv)

    assert "extract" in result.stdout


def test_installed_package_works(fresh_venv, tmp_path):
    script = textwrap.dedent(f"""
        from pathlib import Path

        import sqlalchemy as sa
        from flask import Flask
        from flask_login import LoginManager, UserMixin

        import xnat_dicom_mappings
        from xnat_dicom_mappings.plugins import discover, register_plugins

        venv = Path({str(fresh_venv)!r}).resolve()
        assert Path(xnat_dicom_mappings.__file__).resolve().is_relative_to(venv), xnat_dicom_mappings.__file__

        manifests = discover()
        manifest = manifests["dicom-mappings"]
        assert manifest.source.resolve().is_relative_to(venv), manifest.source
        assert (manifest.migrations / "env.py").is_file()
        assert (manifest.templates / "dicom_mappings" / "admin.html").is_file()

        class Admin(UserMixin):
            id = "1"
            is_admin = True

        app = Flask("check", instance_path={str(tmp_path)!r})
        app.config["SECRET_KEY"] = "test"
        login = LoginManager(app)
        login.user_loader(lambda user_id: Admin())
        login.request_loader(lambda request: Admin())
        engine = sa.create_engine("sqlite:///{tmp_path / 'rules.sqlite3'}")
        register_plugins(app, ["dicom-mappings"], {{"dicom-mappings": {{"engine": engine}}}})

        client = app.test_client()
        rules = client.get("/xapi/dicom_mappings")
        assert rules.status_code == 200, rules.get_data(as_text=True)
        assert rules.json == []
        page = client.get("/admin/dicom-mappings/")
        assert page.status_code == 200, page.status_code
        assert "DICOM mappings" in page.get_data(as_text=True)
        print("ok")
    """)

    result = _run(str(fresh_venv / "bin" / "python"), "-c", script, cwd=tmp_path)

    assert result.stdout.strip().endswith("ok")
