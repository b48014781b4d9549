"""Run records on disk and their states (results), the code that made them (provenance), training-code
changes declared numerically equivalent (declared), the first commit of a digest, the runs index."""
