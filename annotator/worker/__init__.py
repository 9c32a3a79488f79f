"""The worker path: task entry page, assignment-scoped tokens and the byproduct ingestion API (both task kinds)."""
