"""Rendering of results folders: tables, plots and summary.md, from the folder's files alone.
Called by the CLI, never by a task (tasks write their files through ``ssmbench.results``)."""
