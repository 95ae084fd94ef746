"""Operating the deployed stack, and the same on the local runtime: its dead letters (list, show, redrive) and the
environment `sam local invoke` needs to run a function against it. `python -m operations --help`.

Modules: stack (what the tools read of a stack: from CloudFormation, or the local runtime's), dead_letters (the
dead-letter queues and their messages: plain logic), redrive (the SQS calls and the redrive itself), aws and
local (where redriven messages go: the deployed stack, or the local runtime), sam_env_vars, and __main__.
"""
