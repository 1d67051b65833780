"""Stage 2, the stack model: built once from the validated inputs (pools, host views, monitoring)
and checked across items (names, ports, GPU memory, routes, inventory groups)."""
