"""Adapters of the NLU service: encoder, model store, gRPC servicer, turn stage."""
