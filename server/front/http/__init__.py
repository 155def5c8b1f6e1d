"""HTTP for the front: the routes of the contract, the invoke fast path, connection guards and
graceful shutdown. Nothing here parses a body beyond its length: bodies go to workers untouched."""
