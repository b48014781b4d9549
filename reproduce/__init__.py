"""A rerunnable reproduction of AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012).

Data flows one way: params -> train (runs) -> results/ records -> report.
"""
