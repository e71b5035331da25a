"""Root conftest: keeps the source tree importable when running pytest from a checkout."""
