"""Import every benchmark so each registers itself."""
