"""The generator's faces: the gRPC servicer and the Kafka stage."""
