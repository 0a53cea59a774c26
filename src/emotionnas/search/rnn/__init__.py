"""Recurrent-cell search in the NAS-Bench-NLP recipe space (EmotionNAS Sec. 2.2).

supernet.py DARTS-style mixed cell over K nodes and `derive()` to a recipe
search.py   `search_rnn(...)` (resumable); the cell itself is data in space/recipe.py
"""
from emotionnas.space.recipe import CLASSIC, load_recipe, save_recipe, validate_recipe
from emotionnas.search.rnn.search import search_rnn

__all__ = ["search_rnn"]
