"""CCLM: cross-view language modeling, multilingual vision-language pre-training."""
