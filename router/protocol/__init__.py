"""Wire protocols in front of the chat pipeline: request models and their translations."""
