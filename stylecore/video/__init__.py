"""Videos: camera and latent paths, frame rendering, the MP4 writer, StyleNeRF views."""
