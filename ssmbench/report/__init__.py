"""Results folders (manifest, metrics, summary, plots), tables and plots."""
