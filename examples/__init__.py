"""Example machines built on pymem (run one with `python -m examples.<name>`)."""
