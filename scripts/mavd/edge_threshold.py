#!/usr/bin/env python3
"""Chooses MAVD-edge's alert threshold on the validation split, and reports what it does on the
test split, with the runtime's own live scores: each clip is scored as a stream by
`vigil mavd-score` (the shipped window graph on tract, every snippet scored with only the
snippets before it), and events are decided with the runtime's hysteresis (open at `on`, end
after two snippets below `on / 2`).

A violent clip is detected when an event overlaps its staged fight; a normal clip with any event
is a false alarm. The threshold is the one with the most detections among those whose false
alarm rate on validation clips is at most 5 %.

Usage: edge_threshold.py VIGIL WINDOW.onnx DATA_DIR   (DATA_DIR holds validation/ and test/)
"""
import csv
import io
import json
import subprocess
import sys
from pathlib import Path


def live_scores(vigil, model, split, name):
    out = subprocess.run(
        [vigil, "mavd-score", "--model", model,
         "--rgb", f"{split}/RGB/{name}__0.npy",
         "--audio", f"{split}/Audio/{name}__vggish.npy",
         "--flow", f"{split}/Flow/{name}__0.npy"],
        check=True, capture_output=True, text=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    return [(float(r["start_s"]), float(r["live"])) for r in rows]


def events(scores, on, snippet_s=16 / 24):
    """(start, end) of each event under the runtime's hysteresis."""
    off, found, start, below = on / 2, [], None, 0
    for t, s in scores:
        if start is None:
            if s >= on:
                start, below = t, 0
        elif s < off:
            below += 1
            if below == 2:
                found.append((start, t + snippet_s))
                start = None
        else:
            below = 0
    if start is not None:
        found.append((start, scores[-1][0] + snippet_s))
    return found


def rates(clips, on):
    detected = alarms = violent = normal = 0
    for clip in clips:
        raised = events(clip["scores"], on)
        if clip["event_s"]:
            violent += 1
            a, b = clip["event_s"]
            detected += any(s < b and e > a for s, e in raised)
        else:
            normal += 1
            alarms += bool(raised)
    return detected / max(violent, 1), alarms / max(normal, 1)


def main():
    vigil, model, data = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    splits = {}
    for split in ["validation", "test"]:
        clips = json.loads((data / split / "clips.json").read_text())
        for clip in clips:
            clip["scores"] = live_scores(vigil, model, data / split, clip["name"])
        splits[split] = clips
    candidates = [round(0.05 + 0.01 * i, 2) for i in range(91)]
    allowed = [(rates(splits["validation"], on), on) for on in candidates]
    allowed = [(d, -f, on) for (d, f), on in allowed if f <= 0.05]
    best = max(allowed)[2] if allowed else 0.5
    report = {"threshold": best}
    for split, clips in splits.items():
        detected, alarms = rates(clips, best)
        report[split] = {"clips": len(clips), "detected": detected, "false_alarms": alarms}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
