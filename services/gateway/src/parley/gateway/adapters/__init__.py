"""How the gateway meets the outside: HTTP, gRPC and the reply subscription on the bus."""
