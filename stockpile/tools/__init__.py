"""Tools beside the flow: the instance generator and the generated config reference."""
