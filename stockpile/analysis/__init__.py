"""Stage 6: analyses above the solve: studies, explain, evaluation, SAA, response, simulation,
coalitions and arrangements, all run as cases by ``runner``.
"""
