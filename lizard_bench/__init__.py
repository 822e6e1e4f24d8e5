"""lizard-bench: linearize a pretrained causal LM with Lizard and benchmark it beside its teacher."""

__version__ = "0.1.0"
