"""Recurrent-cell search in the NAS-Bench-NLP recipe space (EmotionNAS Sec. 2.2).

recipe.py   the cell as data: validate / load / save, classic RNN, LSTM, GRU recipes
cell.py     fast executor (RecipeCell, RecipeRNN) and frame pooling
supernet.py DARTS-style mixed cell over K nodes and `derive()` to a recipe
search.py   `search_rnn(...)` (resumable), `RNNSearchConfig`, `deep_tensors(...)`
"""
from emotionnas.space.recipe import CLASSIC, load_recipe, save_recipe, validate_recipe
from emotionnas.search.rnn.search import RNNSearchConfig, deep_tensors, search_rnn

__all__ = ["CLASSIC", "load_recipe", "save_recipe", "validate_recipe", "RNNSearchConfig",
           "deep_tensors", "search_rnn"]
