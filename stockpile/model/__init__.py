"""Stage 2-3: the indexed instance of a validated config, and the linear model built over it.

``instance`` indexes the config on labelled axes; ``core`` holds the model's vocabulary (stages,
blocks, cost kinds, family names, the builder); ``families`` adds one ``define_*`` per family of
variables and rows; ``plan`` reads a solution back by family.
"""
