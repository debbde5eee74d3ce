"""Batch scoring: ``python -m service.batch`` scores a CSV, JSON Lines or IDX file with a
model, locally or through a running service, with the service's own validation.

``inputs`` reads files in chunks, ``scoring`` screens and predicts them (``remote`` through
the V1 API), ``outputs`` writes results atomically, ``cli`` is the command line.
"""
