"""The HTTP front end: Flask routes for KServe V1 and the Open Inference Protocol (V2) REST,
operations routes, and the one table from the core's errors to status codes."""
