"""GAN inversion: latent optimisation, the pSp / e4e / ReStyle encoders and their Hub cards, the side-by-side comparison."""
