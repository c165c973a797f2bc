#!/usr/bin/env python3
"""Writes devset.tsv (the development set's file list) from the survey's per-file list.

Usage: make-devset-list.py SURVEY_SOURCES_TSV > models/audio-events/devset.tsv

The survey list (sources.tsv: category, registry, package, version, path_inside_package,
duration_s, …, duplicate_of) is not committed; this script records the selection rules so the
list can be remade or changed. Rules:
- Each (role, package) goes to one part; most packages sit wholly in one part (PART below),
  with per-role exceptions (ROLE_PART) where one part would otherwise lack a label.
- Left out: byte-identical repeats, files under 0.15 s, files of no codec ffmpeg decodes, the processed "Robot" hedgewars voice
  pack (and any row the survey notes as robot-filtered), ricochets (not a gunshot), tuxpaint
  clinks, and packages not listed in PART (too large for what they add, or unsure).
- Background roles are capped per part (CAP_S, in seconds) by a seeded shuffle, so the list
  holds what the mixes need rather than every file.
"""
import csv
import random
import sys

PART = {
    # train: the largest event sets (megaglest impacts, hedgewars voices, cube2 weapons)
    "hedgewars-data": "train", "megaglest-data": "train", "cube2-data": "train",
    "teeworlds-data": "train", "ardentryst": "train", "caveexpress-data": "train",
    "minetest-data": "train", "lmms-common": "train", "scorched3d-data": "train",
    "fillets-ng-data-nl": "train",
    # validation
    "warzone2100-data": "validation", "btanks-data": "validation",
    "netpanzer-data": "validation", "etw-data": "validation", "lugaru-data": "validation",
    "searchandrescue-data": "validation", "dustracing2d-data": "validation",
    "asterisk-core-sounds-en-wav": "validation", "asterisk-moh-opsound-wav": "validation",
    "codec2-examples": "validation", "circuslinux-data": "validation",
    "bucklespring-data": "validation",
    # test: nexuiz's several voice actors for screams and shouts, warmux, triplea
    "nexuiz-data": "test", "warmux-data": "test", "triplea": "test",
    "lincity-ng-data": "test", "tuxfootball": "test", "ktuberling-data": "test",
    "kajongg": "test", "minetest-mod-homedecor": "test",
}
# megaglest's 120 death cries are the only large scream set besides hedgewars (train) and
# nexuiz (test): they go to validation so it can fit a threshold on real screams.
ROLE_PART = {("screaming", "megaglest-data"): "validation"}

ROLE = {
    "gunshot": "gunshot", "explosion": "explosion", "scream": "screaming", "shout": "shout",
    "glass": "glass_breaking", "impact": "impact", "speech": "speech", "music": "music",
    "traffic": "traffic", "crowd": "crowd", "footsteps": "hard_negative",
    "door": "hard_negative",
}
BACKGROUND = {"speech", "music", "traffic", "crowd", "ambience", "hard_negative"}
# Seconds of each background role kept per part (None: all). Mixes default to 120 min of train
# and 30 min each of validation and test; the ambient layer shares its time among four kinds.
CAP_S = {
    ("music", "train"): 3600, ("music", "validation"): 1500, ("music", "test"): 1500,
    ("speech", "train"): 7200, ("speech", "validation"): 2700, ("speech", "test"): 2700,
}


def role_of(row):
    cat, note = row["category"], row["note"]
    if cat == "other_bg":
        return "hard_negative" if "keyboard" in note else "ambience"
    return ROLE.get(cat)


def keep(row, role):
    path, note = row["path_inside_package"], row["note"]
    if row["duplicate_of"] or float(row["duration_s"] or 0) < 0.15:
        return False
    if row["codec"] == "unknown":
        return False  # lmms hit01.ogg: Vorbis inside a WAV header, which ffmpeg cannot decode
    if "/Robot/" in path or "robot-filtered" in note or "robot voice" in note:
        return False
    if "ricochet" in note or "ricoch" in path.lower() or "NOT breaking" in note:
        return False  # warmux spells it ricoche*.ogg, and its note does not say so
    if role == "shout" and row["package"] in ("cube2-data", "pingus-data"):
        return False  # grunts and pitched cartoon voices, not exclaimed lines
    if role == "speech" and row["package"] == "megaglest-data":
        return False  # its actors' death cries are validation's screams
    if role == "explosion" and row["package"] == "lincity-ng-data":
        return False  # unsure, and a single file
    if role in ("music", "traffic", "crowd", "ambience") and float(row["duration_s"]) < 1.0:
        return False  # too short to make a bed from
    return True


def main():
    rows = list(csv.DictReader(open(sys.argv[1], newline=""), delimiter="\t"))
    chosen = {}
    for row in rows:
        role = role_of(row)
        pkg = row["package"]
        if role is None or pkg not in PART or not keep(row, role):
            continue
        part = ROLE_PART.get((role, pkg), PART[pkg])
        chosen.setdefault((role, part), []).append(row)
    out = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    out.writerow(["part", "role", "package", "version", "path", "duration_s", "licence"])
    order = {"train": 0, "validation": 1, "test": 2}
    for (role, part) in sorted(chosen, key=lambda k: (order[k[1]], k[0] in BACKGROUND, k[0])):
        group = sorted(chosen[(role, part)], key=lambda r: (r["package"], r["path_inside_package"]))
        cap = CAP_S.get((role, part))
        if cap is not None and sum(float(r["duration_s"]) for r in group) > cap:
            random.Random(f"{role}/{part}").shuffle(group)
            kept, total = [], 0.0
            for r in group:
                if total >= cap:
                    break
                kept.append(r)
                total += float(r["duration_s"])
            group = sorted(kept, key=lambda r: (r["package"], r["path_inside_package"]))
        for r in group:
            out.writerow([part, role, r["package"], r["version"], r["path_inside_package"],
                          r["duration_s"], r["licence"]])


if __name__ == "__main__":
    main()
