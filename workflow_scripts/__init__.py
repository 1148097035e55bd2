"""Importable logic of the SAE Bench Snakemake workflow.

Rules stay thin: each one calls a small entry point in this package, so every step can be
tested as a function and run by hand (`python -m workflow_scripts.steps.<step> --help`).
The layers (plan, hub, saes, evals, results, steps, tools, demo): docs/architecture.md.
"""
