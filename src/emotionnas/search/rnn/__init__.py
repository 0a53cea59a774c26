"""Recurrent-cell search in the NAS-Bench-NLP recipe space (EmotionNAS Sec. 2.2).

supernet.py DARTS-style mixed cell over K nodes and `derive()` to a recipe
search.py   `search_rnn(...)`: what the recurrent search gives the shared loop of search/loop.py;
            the cell itself is data in space/recipe.py (its OPS the one op table)
"""
from emotionnas.space.recipe import CLASSIC, load_recipe, save_recipe, validate_recipe
from emotionnas.search.rnn.search import search_rnn

__all__ = ["search_rnn"]
