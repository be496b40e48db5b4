"""Wrong on purpose: a child process forked at import keeps the grader's socket open, and every call exits the
process. Each call must fail at once as "died (exit code 3)", not as a timeout, and the child must not outlive grading.
The child writes its pid next to this file when GCONV_TEST_PID_FILE names a file (tests/test_grading.py does)."""

import os
import time

if os.fork() == 0:
    if os.environ.get("GCONV_TEST_PID_FILE"):
        with open(os.environ["GCONV_TEST_PID_FILE"], "a") as pids:
            pids.write(f"{os.getpid()}\n")
    time.sleep(60)
    os._exit(0)


def channel_shuffle(x, groups):
    os._exit(3)


def channel_shuffle_backward(dy, groups):
    os._exit(3)
