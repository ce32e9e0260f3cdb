"""X-VLM: a Swin (or DeiT / CLIP-ViT) image encoder from timm + one BERT stack whose top layers cross-attend."""
