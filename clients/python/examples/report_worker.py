"""A Python worker serving one task type, `reports.monthly`, with live progress and a log.

Run with (a server first, then this worker, then a launch from anywhere):

    cargo run -p offstage-server -- serve --demo
    python clients/python/examples/report_worker.py http://127.0.0.1:7700
    cargo run -q -p offstage-server -- launch reports.monthly --args '{"month": "2026-10"}' --follow

The dashboard at http://127.0.0.1:7700/ draws its progress bar (state `done` / `total`) and
its Kill button stops it at the next day.
"""

from __future__ import annotations

import sys

import offstage


@offstage.background_task("reports.monthly")
def monthly(month: str, days: int = 30) -> dict[str, object]:
    task = offstage.get_current_task()
    offstage.task_state.update(month=month, done=0, total=days)
    total = 0
    for day in range(1, days + 1):
        task.sleep(0.2)  # the day's work; wakes at once (raising TaskKilled) on a kill
        total += day
        offstage.task_state["done"] = day
        print(f"{month}-{day:02d}: running total {total}")
    return {"month": month, "total": total}


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7700"
    offstage.connect(url, token=None if len(sys.argv) < 3 else sys.argv[2])
    print(f"serving reports.monthly for {url}; Ctrl-C to stop")
    offstage.wait_forever()
