"""Data only: the shipped recognizers, one model folder per name (see recognizer/shipped.py).

Made by `make models` (benchmarks/shipped_models.py); nothing here is imported as code.
"""
