"""gc.cache_info() / gc.clear_cache(): the on-disk cache of compiled kernels."""
from .cbackend.build import cache_info, clear_cache

__all__ = ["cache_info", "clear_cache"]
