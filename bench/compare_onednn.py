# Aggregates bench/onednn_versions output for bench/compare_onednn.sh: a Markdown table of the median over
# rounds of each (case, pass) under a base oneDNN and a new one, their ratio and implementations, then totals.
# Usage: compare_onednn.py BASE.jsonl NEW.jsonl (lines that are not JSON objects, e.g. oneDNN's verbose, are skipped)
import json
import statistics
import sys


def load(path):
    """version, {(case, pass): [median_ms per round]}, {(case, pass): impl} from one build's output."""
    times, impls, versions = {}, {}, set()
    with open(path) as lines:
        for line in lines:
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            key = (row["case"], row["pass"])
            times.setdefault(key, []).append(row["median_ms"])
            impls[key] = row["impl"]
            versions.add(row["onednn"])
    if len(versions) != 1:
        sys.exit(f"compare_onednn.py: {path} holds oneDNN versions {sorted(versions)}, expected exactly one")
    return versions.pop(), times, impls


def cell(times, key):
    """The median over rounds, or None where the build did not time it (unimplemented there)."""
    measured = [ms for ms in times.get(key, []) if ms is not None]
    return statistics.median(measured) if measured else None


def main(base_path, new_path):
    base_version, base_times, base_impls = load(base_path)
    new_version, new_times, new_impls = load(new_path)
    print(f"| case | pass | {base_version} ms | {new_version} ms | {new_version}/{base_version} | {base_version} impl | {new_version} impl |")
    print("| --- | --- | ---: | ---: | ---: | --- | --- |")
    base_total = new_total = 0.0
    keys = list(base_times) + [key for key in new_times if key not in base_times]  # in the order they ran
    for key in keys:
        base_ms, new_ms = cell(base_times, key), cell(new_times, key)
        both = base_ms is not None and new_ms is not None
        if both:
            base_total += base_ms
            new_total += new_ms
        shown = [f"{ms:.3f}" if ms is not None else "—" for ms in (base_ms, new_ms)]
        print(f"| {key[0]} | {key[1]} | {shown[0]} | {shown[1]} | {f'{new_ms / base_ms:.2f}' if both else '—'} "
              f"| {base_impls.get(key, '—')} | {new_impls.get(key, '—')} |")
    print(f"\nSum over the rows both timed: {base_version} {base_total:.1f} ms, {new_version} {new_total:.1f} ms, "
          f"ratio {new_version}/{base_version} = {new_total / base_total:.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compare_onednn.py BASE.jsonl NEW.jsonl")
    main(*sys.argv[1:])
