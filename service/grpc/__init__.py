"""The Open Inference Protocol over gRPC: a thin front end over the serving core."""
