"""Model resolution and loading: the embedded SmolLM2 teacher, hub ids and local directories.

Names are imported on first use: :mod:`~lizard_bench.models.loading` pulls in torch and transformers.
"""

from lizard_bench.lazy import lazy_attributes

_EXPORTS = {
    "EMBEDDED_MODELS": "locate", "ModelNotFoundError": "locate", "ModelSource": "locate", "locate_model": "locate",
    "LoadedModel": "loading", "load_model": "loading",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)
