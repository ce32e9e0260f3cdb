"""VLMo: a multiway transformer with modality experts (mixture-of-modality-experts)."""
