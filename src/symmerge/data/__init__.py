"""Image data sources (nothing is downloaded at run time)."""

from symmerge.data.images import ImageSet, load_images

__all__ = ["ImageSet", "load_images"]
