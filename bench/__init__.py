"""The performance benchmark: the real bot against a throwaway Synapse and the physical floor (issue 6).

`python -m bench` runs it; see bench/README.md and docs/performance.md for the method and the figures.
"""
