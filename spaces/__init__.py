"""Gradio tabs of the hub, one module per tab; each exposes build(engine)."""
