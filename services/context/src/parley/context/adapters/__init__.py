"""How the context service meets the outside: PostgreSQL, gRPC and the event bus."""
