"""ssmbench: benchmarks for selective state-space models, Transformers, MoE and byte-level LMs."""

__version__ = "0.1.0"
