"""Scoring interpretations: metrics, curves, baselines, the sanity check, the test-set loop, one file."""
