"""Driving HDL tools: Yosys (introspection), Icarus Verilog and Verilator (exhaustive sweeps)."""
