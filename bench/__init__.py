"""Benchmarks of xnat-dicom-mappings: extraction against pydicom baselines, rule look-ups and the REST API.

``make bench`` (``python -m bench``) generates a synthetic MR session in a
temporary directory, runs every measurement, rewrites BENCHMARKS.md and
docs/bench-scaling.png, and prints one ``target NAME: VALUE (goal GOAL) met``
line per target. ``--size tiny`` runs the same code on a few files.
"""
