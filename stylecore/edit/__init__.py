"""Semantic editing of StyleGAN codes: InterFaceGAN directions, GANSpace components, StyleSpace
channels and local (part) editing. Plain functions over networks and codes; see each module."""
from __future__ import annotations

from stylecore.engine.assets import EDITING_ASSETS, EditingAsset, fetch_asset, fetch_file, model_cache_key
from stylecore.edit.ganspace import PCA, apply_component, cached_pca, compute_pca, load_pca
from stylecore.edit.interfacegan import apply_direction, load_direction, parse_layers, project_out
from stylecore.edit.local_edit import (PartModel, cached_parts, compute_parts, overlay_parts, part_map,
                                       render_confined, transfer_part)
from stylecore.edit.stylespace_channels import (FFHQ_CHANNELS, ChannelScore, KnownChannel, edit_channel, edit_channels,
                                            known_channels_fit, locate_channels, style_std)

__all__ = [
    "EDITING_ASSETS", "EditingAsset", "fetch_asset", "fetch_file", "model_cache_key",
    "PCA", "apply_component", "cached_pca", "compute_pca", "load_pca",
    "apply_direction", "load_direction", "parse_layers", "project_out",
    "PartModel", "cached_parts", "compute_parts", "overlay_parts", "part_map", "render_confined", "transfer_part",
    "FFHQ_CHANNELS", "ChannelScore", "KnownChannel", "edit_channel", "edit_channels", "known_channels_fit",
    "locate_channels", "style_std",
]
