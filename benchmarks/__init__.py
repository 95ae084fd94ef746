"""Benchmark of each Lambda function of `functions/` against a baseline that only creates a boto3 client.

`python -m benchmarks --help` lists the options; the report it prints says how each number was measured.
"""
