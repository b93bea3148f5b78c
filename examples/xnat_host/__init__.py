"""A small XNAT-like archive that hosts the xnat-dicom-mappings plugin.

Run it with ``python -m examples.xnat_host --data-dir DIR`` from the
repository root, or build it in code with :func:`create_app`.
"""

from .app import create_app

__all__ = ["create_app"]
