"""The binary contract between the edge TA, its C client and the Python package.

``contract.spec`` is the one hand-edited description (commands, result codes,
refusal classes and their exceptions, limits, enums, flags and the byte layout
of every artefact body and status block). ``python -m contract.generate``
writes everything derived from it; ``--check`` fails on drift. This package
imports nothing outside the standard library, and nothing imports it at run
time: the generated files are committed.
"""
