"""Models: the Qwen3-style decoder of our own, and Hugging Face causal LMs (SmolLM2-135M from GGUF included)."""
