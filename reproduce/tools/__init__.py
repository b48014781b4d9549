"""Measuring and packing: the bench against the seeds' d2l loop, a GPU loan's archive, the check that a code
change is numerically equivalent."""
