"""The bottom layer: file locks, git queries, where the project is. Nothing of the paper."""
