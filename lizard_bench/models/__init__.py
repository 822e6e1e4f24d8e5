"""Model resolution and loading: the embedded SmolLM2 teacher, hub ids and local directories."""

from lizard_bench.models.loading import LoadedModel, load_model
from lizard_bench.models.locate import EMBEDDED_MODELS, ModelNotFoundError, ModelSource, locate_model

__all__ = ["EMBEDDED_MODELS", "LoadedModel", "ModelNotFoundError", "ModelSource", "load_model", "locate_model"]
