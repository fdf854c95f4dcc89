"""The auxiliary networks that look at images: CLIP, LPIPS and pixel metrics, identity (ArcFace), face alignment."""
