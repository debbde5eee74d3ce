"""The serving core every front end shares (HTTP today; gRPC and Spark next): registry, data
plane, validation, errors and metrics. Protocol-independent: it never imports Flask."""
