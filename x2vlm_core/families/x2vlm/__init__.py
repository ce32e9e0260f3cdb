"""X²-VLM: BEiT-2 image encoder + one BERT stack whose top layers cross-attend to the image."""
