"""Data sources (synthetic default, local files, enwik8, HF datasets) and tokenizers."""
