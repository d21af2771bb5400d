"""The data stages: download, clean, split, tokens, vocabulary, corpus (ids and file formats)."""
