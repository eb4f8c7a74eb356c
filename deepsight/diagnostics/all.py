"""Import every diagnostic so each registers itself."""
