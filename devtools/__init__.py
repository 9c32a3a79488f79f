"""Development tools that are not part of the deployed app (local fakes of crowd markets for tests and the demo)."""
