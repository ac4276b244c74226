"""Stage 4: solving a built model: the MIP backends, the decomposition, and the tidying of a
solution into its canonical schedule.
"""
