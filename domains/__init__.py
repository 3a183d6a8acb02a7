"""Domain packages, importable as ``sciflow.domains.<name>``."""
