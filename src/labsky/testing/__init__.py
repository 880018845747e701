"""Test helpers for labsky and for labs' own repositories.

Installed as a pytest plugin (entry point `labsky`), so these fixtures are
available in any project that installs labsky:

- `labsky_session`: a factory `labsky_session(profile, **start_kwargs)` that
  starts sessions with their data in a temporary directory and closes them.
- `collect_documents`: subscribe it to a RunEngine; it keeps `(name, doc)` pairs
  and validates each against the event-model schemas.
- `repo_root`: the labsky checkout when tests run from one.
"""

from labsky.testing.documents import DocumentCollector, validate_document

__all__ = ["DocumentCollector", "validate_document"]
