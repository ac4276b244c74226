"""Stage 7: the HTML report of any run folder."""
