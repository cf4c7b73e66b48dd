"""kernel-profile sweeps and the timing regression gate."""
