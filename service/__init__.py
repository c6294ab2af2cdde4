"""Conduit (RealWorld API) on aiohttp + asyncpg: one pool per process, one connection per request."""
