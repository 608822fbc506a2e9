"""Alerts someone must look at (the line unstaffed, a long wait, the trunk down, a crisis), and the
line watchdog that raises them."""
