"""stylecore: StyleGAN networks, checkpoint readers and techniques, importable without gradio."""
