"""Stored conversations: OpenAI Responses answers kept per tenant for ``previous_response_id``."""
