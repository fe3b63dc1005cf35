"""The HTTP side of a worker: the query API, its OpenAPI document, metrics and the web pages."""
