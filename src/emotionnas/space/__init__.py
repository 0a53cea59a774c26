"""The search spaces as plain data, and the executors that run a point of them.

cnn_ops.py      the DARTS op table (OPS, PRIMITIVES)
genotype.py     a derived CNN cell as data (Genotype) and the DARTS derivation rule
cnn_cells.py    Cell (a genotype's cell) and SearchCell (the mixed-op cell of the supernet)
recipe.py       a recurrent cell as data: the NAS-Bench-NLP recipe, its validator, classic cells
recipe_cell.py  RecipeCell / RecipeRNN: fast execution of a recipe

Both `search/` (which finds points) and `models/` (which trains them) import from here.
"""
