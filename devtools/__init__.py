"""Development tools that are not part of the deployed app: the demo data, the simulated crowd, local fakes of the
crowd markets (Prolific, MTurk) for tests and the demo, and the demo's commands (a Django app: DJANGO_DEVTOOLS)."""
