"""Stage 5: result tables of a solved plan, its binding limits, the run folder written from them
(``outputs``), the one reader of a run folder (``runs``) and the verifier (``check``, which imports
no optimizer module).
"""
