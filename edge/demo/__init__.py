"""``edge demo``: a whole private federation on one machine (docs/demo.md)."""
