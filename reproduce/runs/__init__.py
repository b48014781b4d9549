"""One run safely (runner: a lock, the one decision of reuse, stale records set aside), the measures of a
run's final weights, the built net against Figure 2, and the faults a run survives."""
