"""One module per transformer family layout; each defines a TransformerFamily subclass."""
