# Reads the metrics file of `baton train --metrics` (JSON lines, each with an "event" field) for the
# quality tools in this folder. A missing or malformed file raises MetricsError with one sentence
# that names the file and the line.
import json

# Fields each event kind must carry as numbers for the tools to use it.
REQUIRED_NUMBERS = {
    "epoch": ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "update"),
    "step": ("epoch", "update", "loss"),
}


class MetricsError(Exception):
    """One sentence saying why a metrics file cannot be used."""


def read_events(path):
    """Every event of the metrics file at path, in file order (a list of dicts)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError as error:
        raise MetricsError(f"cannot read the metrics file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise MetricsError(f"{path} is not text; is it a baton --metrics file?") from None
    events = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            events.append(parse_event(path, number, line))
    return events


def parse_event(path, number, line):
    """The event on one line, checked to carry the fields its kind needs."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError as error:
        raise MetricsError(f"{path}:{number} is not JSON ({error.msg}, column {error.colno}); "
                           "is it a baton --metrics file?") from None
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise MetricsError(f"{path}:{number} has no \"event\" field; is it a baton --metrics file?")
    for field in REQUIRED_NUMBERS.get(event["event"], ()):
        value = event.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MetricsError(f"{path}:{number}: the {event['event']} event has no number \"{field}\"")
    return event


def of_kind(events, kind):
    """The events whose "event" field is kind."""
    return [event for event in events if event["event"] == kind]


def planned_epochs(events):
    """The epochs the run was started for (its config event), or None without one."""
    configs = of_kind(events, "config")
    epochs = configs[-1].get("epochs") if configs else None
    return epochs if isinstance(epochs, int) else None


def is_finished(events):
    """True when the metrics hold the epoch event of the run's last epoch."""
    last = planned_epochs(events)
    return last is not None and any(event["epoch"] == last for event in of_kind(events, "epoch"))
