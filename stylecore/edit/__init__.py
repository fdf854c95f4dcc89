"""Semantic editing of StyleGAN codes: InterFaceGAN directions, GANSpace components, StyleSpace
channels and local (part) editing. Plain functions over networks and codes; see each module.
`edits.apply` runs any of them from one request and returns an EditResult (StyleCLIP's text edits:
`styleclip.edit_by_text`); `resources` keeps the networks and tables they need in the model manager."""
