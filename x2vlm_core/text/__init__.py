"""Tokenizers: BERT WordPiece (X²-VLM, VLMo) and XLM-R sentencepiece (CCLM), with caption normalisation."""
