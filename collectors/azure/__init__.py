"""Azure collectors: prices (Retail Prices API)."""
