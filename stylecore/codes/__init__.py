"""Latent codes: seeds to z and W, truncation and mixing, W / W+ / S codes in and out."""
