# Reads the Chrome-trace timeline of `baton train --timeline` (runtime/base/timeline.cpp) and splits
# each rank's time, per update, into computing, communicating and idle (waiting between instructions).
# A missing or malformed file raises TimelineError with one sentence.
import json
import re
from dataclasses import dataclass, field

# Instruction names (schedulers/instruction.cpp): "F3.1 s0 v2", "load 0 s1", "send-act 2 >r1",
# "stash 4" carry a microbatch; "step u0", "avg-wait u3.1", "gather-start u2" carry an update.
INSTRUCTION_NAME = re.compile(r"^([A-Za-z-]+?) ?(u?)(\d+)")
COMMUNICATION_PREFIXES = ("send-", "recv-", "avg-", "gather-")
ACTIVITIES = ("compute", "communication", "idle")


class TimelineError(Exception):
    """One sentence saying why a timeline cannot be used."""


@dataclass
class Box:
    """One instruction as the executor timed it, in microseconds since the rank's start."""
    rank: int
    name: str
    category: str
    start_us: float
    duration_us: float


@dataclass
class RankTime:
    """One rank's microseconds per activity, each a dict update -> time."""
    rank: int
    row: str
    per_update: dict = field(default_factory=lambda: {activity: {} for activity in ACTIVITIES})

    def add(self, activity, update, microseconds):
        times = self.per_update[activity]
        times[update] = times.get(update, 0.0) + microseconds

    def total(self, activity):
        return sum(self.per_update[activity].values())


def read_timeline(path):
    """(row names by rank, boxes) of the trace at path."""
    try:
        with open(path, encoding="utf-8") as f:
            trace = json.load(f)
    except OSError as error:
        raise TimelineError(f"cannot read the timeline {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TimelineError(f"{path} is not a JSON timeline ({error}); write one with baton train --timeline") from None
    events = trace.get("traceEvents") if isinstance(trace, dict) else None
    if not isinstance(events, list):
        raise TimelineError(f"{path} has no \"traceEvents\" list; write one with baton train --timeline")
    rows = {event["pid"]: event.get("args", {}).get("name", "") for event in events
            if isinstance(event, dict) and event.get("ph") == "M" and event.get("name") == "process_name"}
    boxes = [parse_box(path, index, event) for index, event in enumerate(events)
             if isinstance(event, dict) and event.get("ph") == "X"]
    if not boxes:
        raise TimelineError(f"{path} holds no instructions (\"X\" events)")
    return rows, boxes


def parse_box(path, index, event):
    """The Box of one complete ("X") trace event."""
    try:
        box = Box(int(event["pid"]), str(event["name"]), str(event.get("cat", "")), float(event["ts"]),
                  float(event["dur"]))
    except (KeyError, TypeError, ValueError):
        raise TimelineError(f"{path}: trace event {index} lacks a numeric pid, ts or dur, or a name") from None
    return box


def activity_of(box):
    """compute (forward, backward and the rank's other local work: loads, optimizer steps, stashes)
    or communication (sends, receives, averaging and gathers, including the wait inside them)."""
    return "communication" if box.name.startswith(COMMUNICATION_PREFIXES) else "compute"


def update_resolver(boxes):
    """A function box -> update number (None when its name carries no number). Microbatch ids map
    to updates by position: the sorted microbatch ids are split evenly over the sorted update ids."""
    microbatches, updates = set(), set()
    for box in boxes:
        parsed = INSTRUCTION_NAME.match(box.name)
        if parsed:
            (updates if parsed.group(2) else microbatches).add(int(parsed.group(3)))
    microbatches, updates = sorted(microbatches), sorted(updates)
    per_update = max(1, round(len(microbatches) / len(updates))) if updates else 1
    position = {microbatch: index for index, microbatch in enumerate(microbatches)}

    def resolve(box):
        parsed = INSTRUCTION_NAME.match(box.name)
        if not parsed:
            return None
        number = int(parsed.group(3))
        if parsed.group(2) or not updates:
            return number
        return updates[min(position[number] // per_update, len(updates) - 1)]
    return resolve


def rank_times(rows, boxes):
    """RankTime of every rank: each box's duration goes to its activity and update, the gap before
    it to idle of the same update, and the time after a rank's last box (up to the trace's end) to
    idle of its last update. So every rank's three totals add up to the whole trace."""
    resolve = update_resolver(boxes)
    trace_end = max(box.start_us + box.duration_us for box in boxes)
    result = []
    for rank in sorted({box.rank for box in boxes}):
        mine = sorted((box for box in boxes if box.rank == rank), key=lambda box: box.start_us)
        result.append(split_rank(RankTime(rank, rows.get(rank, f"rank {rank}")), mine, resolve, trace_end))
    return result


def split_rank(times, boxes, resolve, trace_end):
    """Fills times from one rank's boxes (sorted by start)."""
    cursor, update = 0.0, None
    for box in boxes:
        update = first_known(resolve(box), update, boxes, resolve)
        times.add("idle", update, max(0.0, box.start_us - cursor))
        times.add(activity_of(box), update, box.duration_us)
        cursor = max(cursor, box.start_us + box.duration_us)
    times.add("idle", update, max(0.0, trace_end - cursor))
    return times


def first_known(update, previous, boxes, resolve):
    """update, else the previous box's, else the first update named on the rank (or 0)."""
    if update is not None:
        return update
    if previous is not None:
        return previous
    return next((u for u in map(resolve, boxes) if u is not None), 0)
