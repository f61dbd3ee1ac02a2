"""Every knob's legal values, the alpha grid, the precision policy and the frozen configurations
the phases take.
"""
