"""One Lambda execution environment (a warm "container"). Run by local_runtime.functions, never imported:

    python -I -S -B worker.py <requests fd> <responses fd> <settings JSON>

`-S` leaves site-packages off sys.path and `-I` the script's folder and PYTHON* variables, so the function
imports only what Lambda would give it: the paths in the settings (its code, its layers, the runtime's own
packages) and the standard library. Until the handler is imported this file uses the standard library only.

The function's stdout and stderr are its log stream, captured by the parent; the parent and this worker speak
JSON lines over two dedicated pipes instead. For each request (`requestId`, `timeoutMs`,
`invokedFunctionArn`, `event`) the worker answers `{"started": {"deadlineMs", "initMs"}}` once the handler is
imported (initMs only on the invocation that imported it), then `{"result": ...}` or `{"error": {...}}` in
the Lambda Python runtime's error format. An environment whose initialization failed answers once (with
`"initFailed": true`) and exits, as Lambda discards it.
"""

import importlib
import json
import os
import sys
import time
import traceback

# Lambda gives a function's initialization 10 s on its own. An init that takes longer is run again as part of
# the first invocation, so then the init and the handler share the function's timeout.
INIT_PHASE_LIMIT_MS = 10_000


class LambdaContext:
    """The context object of Lambda's Python runtime, attribute for attribute (memory_limit_in_mb is a string
    there too: it is read from the environment)."""

    def __init__(self, request, deadline_ms):
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = request["invokedFunctionArn"]
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.aws_request_id = request["requestId"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message):
        sys.stdout.write(message)


class InitError(Exception):
    def __init__(self, error):
        super().__init__(error["errorMessage"])
        self.error = error


def error_of(exception, error_type=None, message=None):
    return {
        "errorType": error_type or type(exception).__name__,
        "errorMessage": str(exception) if message is None else message,
        "stackTrace": traceback.format_list(traceback.extract_tb(exception.__traceback__)),
    }


def load_handler(handler):
    """Lambda's rules and error types for finding the handler (`module.function`)."""
    module_name, _, function_name = handler.rpartition(".")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        message = f"Unable to import module '{module_name}': {error}"
        raise InitError(error_of(error, "Runtime.ImportModuleError", message))
    except SyntaxError as error:
        message = f"Syntax error in module '{module_name}': {error}"
        raise InitError(error_of(error, "Runtime.UserCodeSyntaxError", message))
    except Exception as error:
        raise InitError(error_of(error))
    function = getattr(module, function_name, None)
    if function is None:
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        raise InitError({"errorType": "Runtime.HandlerNotFound", "errorMessage": message, "stackTrace": []})
    return function


def log_error(error):
    """What Lambda's Python runtime writes to the log stream when an invocation fails."""
    trace = "".join(error["stackTrace"])
    sys.stderr.write(f"[ERROR] {error['errorType']}: {error['errorMessage']}\n")
    sys.stderr.write(f"Traceback (most recent call last):\n{trace}")
    sys.stderr.flush()


def invoke(handler, request, deadline_ms):
    try:
        result = handler(request["event"], LambdaContext(request, deadline_ms))
    except Exception as error:
        response = {"error": error_of(error)}
    else:
        try:
            response = {"result": json.loads(json.dumps(result))}
        except (TypeError, ValueError) as error:
            response = {"error": error_of(error, "Runtime.MarshalError", f"Unable to marshal response: {error}")}
    if "error" in response:
        log_error(response["error"])
    return response


def invocation_deadline_ms(started_ms, init_ms, timeout_ms):
    """The timeout counts from the end of the init; but an init longer than the init phase's limit is run
    again within the invocation on Lambda, so then it counts from the start of the init."""
    if init_ms is not None and init_ms > INIT_PHASE_LIMIT_MS:
        return started_ms + timeout_ms
    return started_ms + (init_ms or 0) + timeout_ms


def main():
    requests_fd, responses_fd, settings = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    # Lambda's order: the code (/var/task), the layers (/opt/python), the runtime's packages, then the stdlib.
    sys.path[:0] = settings["path"]
    # Lambda's runtime writes the function's output unbuffered: lines keep their order across stdout and stderr.
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    handler = None
    with os.fdopen(requests_fd, "rb") as requests, os.fdopen(responses_fd, "wb") as responses:

        def answer(message):
            sys.stdout.flush()
            sys.stderr.flush()
            responses.write(json.dumps(message).encode() + b"\n")
            responses.flush()

        for line in requests:
            request = json.loads(line)
            started_ms = int(time.time() * 1000)
            init_ms = None
            if handler is None:
                try:
                    handler = load_handler(os.environ["_HANDLER"])
                except InitError as failure:
                    log_error(failure.error)
                    answer({"started": {"deadlineMs": started_ms + request["timeoutMs"], "initMs": None}})
                    answer({"error": failure.error, "initFailed": True})
                    return
                init_ms = int(time.time() * 1000) - started_ms
            deadline_ms = invocation_deadline_ms(started_ms, init_ms, request["timeoutMs"])
            answer({"started": {"deadlineMs": deadline_ms, "initMs": init_ms}})
            answer(invoke(handler, request, deadline_ms))


if __name__ == "__main__":
    main()
