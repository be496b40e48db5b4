"""Wrong on purpose: two children forked at import (one in a session of its own, out of the worker's process group)
keep the grader's socket open, and every call exits the process. Each call must fail at once as "died (exit code 3)",
not as a timeout, and no child may outlive grading. Their pids are appended to the file GCONV_TEST_PID_FILE names."""

import os
import time


def _child(new_session):
    pid = os.fork()
    if pid == 0:
        if new_session:
            os.setsid()
        time.sleep(60)
        os._exit(0)
    if os.environ.get("GCONV_TEST_PID_FILE"):
        with open(os.environ["GCONV_TEST_PID_FILE"], "a") as pids:
            pids.write(f"{pid}\n")


_child(new_session=False)
_child(new_session=True)


def channel_shuffle(x, groups):
    os._exit(3)


def channel_shuffle_backward(dy, groups):
    os._exit(3)
