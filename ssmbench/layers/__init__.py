"""Model building blocks: attention, feed-forward, Mamba, MoE, norms. Import only from ops."""
