"""What the event-driven functions share: rejecting bad input, conditional writes, SQS batch consumption.

Each module is imported on its own so a function loads only what it uses.
"""
