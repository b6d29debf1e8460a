"""The asset graph, one module per stage of the flow (DESIGN §2)."""
