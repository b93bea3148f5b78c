"""Examples of hosting xnat-dicom-mappings; run them from the repository root."""
