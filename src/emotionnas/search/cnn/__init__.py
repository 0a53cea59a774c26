"""DARTS cell search over spectrograms (EmotionNAS Sec. 2.2) and emoDARTS.

ops.py (OPS registry) -> cells.py -> supernet.py -> architect.py (bi-level step)
-> search.py (``search_cnn``, resumable) ; genotype.py holds the result as data.
"""
