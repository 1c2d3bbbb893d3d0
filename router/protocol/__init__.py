"""Wire protocols other than chat completions: request models and their translation."""
