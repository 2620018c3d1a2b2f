"""Capture: validation, redaction, pseudonymisation, batch ingest, importers, exporters."""
