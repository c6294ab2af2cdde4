"""SQL shipped with the service: migrations/ and queries/, read through importlib.resources."""
