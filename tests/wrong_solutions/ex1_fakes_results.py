"""Wrong on purpose: writes full-marks results where the grader's batch process will write its own (a file named on
its command line, or, now that results travel over an inherited pipe, that pipe reopened through /proc), then kills
that process. The batch did not finish, so its results must not count."""

import json
import os
import signal
import sys


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    ppid = int(sys.argv[4])
    args = open(f"/proc/{ppid}/cmdline", "rb").read().split(b"\0")
    if b"--grading-results" in args:
        target = args[args.index(b"--grading-results") + 1].decode()
    else:
        target = f"/proc/{ppid}/fd/" + args[args.index(b"--grading-results-fd") + 1].decode()
    me = os.path.abspath(__file__)
    tests = [
        {
            "exercise": "ex1",
            "file": me,
            "number": "2.1",
            "name": "ex1: forward pass",
            "nodeid": "x",
            "score": 20.0,
            "max_score": 20.0,
            "status": "passed",
            "output": "",
            "visibility": "visible",
        }
    ]
    json.dump(
        {
            "score": 20.0,
            "max_score": 20.0,
            "execution_time": 1.0,
            "exercises": [
                {"exercise": "ex1", "title": "t", "file": me, "score": 20.0, "max_score": 20.0, "verdict": None}
            ],
            "tests": tests,
        },
        open(target, "w"),
    )
    os.kill(ppid, signal.SIGKILL)
