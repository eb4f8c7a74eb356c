"""Model loading (any Hugging Face causal LM, the packaged default model) and model anatomy."""
