"""The wire protocols the gateway speaks: request and response models, SSE framing, OpenAPI."""
