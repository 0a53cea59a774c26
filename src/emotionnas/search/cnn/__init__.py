"""DARTS cell search over spectrograms (EmotionNAS Sec. 2.2) and emoDARTS.

space/cnn_ops.py (OPS registry) -> space/cnn_cells.py -> supernet.py -> search.py
(``search_cnn``: what the CNN search gives the shared loop of search/loop.py; α step in
search/architect.py); space/genotype.py holds the result as data.
"""
