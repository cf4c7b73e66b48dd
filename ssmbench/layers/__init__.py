"""Model building blocks: attention, feed-forward, Mamba, MoE, norms. Import only from ops.

Stateful layers (attention, Mamba) share one decoding interface:
``allocate_inference_cache(batch_size, max_seqlen, dtype, device) -> state``,
``prefill(x (B, T, D), state, offset) -> (B, T, D)``, ``step(x (B, D), state, pos) -> (B, D)``.
"""
