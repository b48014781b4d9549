"""The declarations: every parameter and preset (params), the claims registry and the runs each claim needs
(plan, claims.toml), the metrics, run ids, and the CPU study's registered design. No torch."""
