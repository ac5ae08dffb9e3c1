"""What a developer runs beside the application, never installed with it.

The throwaway local homeserver (`local_homeserver.py`), the demo and its test people (`demo/`): the demo
(`bash dev.sh demo`), the end-to-end tests and the benchmarks share them. They live outside `bot/` so that
the wheel a practice installs carries only the application (pyproject's `packages.find` includes `bot`,
`handlers` and `storage`, nothing else; tests/packaging checks the installed wheel).
"""
