"""A rerunnable reproduction of AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012).

Data flows one way: params -> plan (the runs each claim needs) -> grid / runner / train (runs)
-> results/ records -> claims (verdicts) -> notebooks and book. The training side never imports
the report's modules (tests/test_grid.py checks the import graph).
"""
