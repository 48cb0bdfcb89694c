"""Hardware cost of a design from Yosys synthesis."""
