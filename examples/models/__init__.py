"""Model factories shared by the import and end-to-end tests."""
