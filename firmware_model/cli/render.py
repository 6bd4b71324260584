"""How `fwmodel`'s results read as text (their JSON is each result's `to_json`)."""

from __future__ import annotations

import json
from errno import errorcode
from typing import TextIO

from firmware_model.agent.schedule import Reason, RunReport, ScheduledCheck
from firmware_model.agent.sweep import SweepReport
from firmware_model.agent.updater import UpdateOutcome, UpdateResult
from firmware_model.device.status import OS_VERSION
from firmware_model.device.sysevent import AppReport, EventStatus, SysEventCall, SysEventInfo
from firmware_model.device.tls import as_utc, iso
from firmware_model.trust.components import Component
from policy.text import counted


def print_json(value: object, out: TextIO) -> None:
    json.dump(value, out, indent=2)
    out.write("\n")


def duration_text(seconds: float | None) -> str:
    """`seconds` as days, hours, minutes and seconds ("1 d 2 h 0 min 5 s", "42 s")."""
    if seconds is None:
        return "unknown"
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    while parts and parts[0][0] == 0:  # leading zero units are left out
        parts.pop(0)
    return " ".join([*(f"{value} {unit}" for value, unit in parts), f"{secs} s"])


def status_text(status: dict[str, object]) -> list[str]:
    uptime = status["uptime_s"]
    assert uptime is None or isinstance(uptime, float | int)
    lines = [f"device time {status['device_time']}, last reset {status['last_reset_cause']}",
             f"OS version {status['os_version']}, boot {status['boot_count']} since power-up, "
             f"up {duration_text(uptime)}"]
    if not status.get("booted"):
        lines.append("not booted: " + str(status.get("problem") or "not provisioned"))
        return lines
    slots = status["slots"]
    versions = status["security_versions"]
    assert isinstance(slots, dict) and isinstance(versions, dict)
    for component in Component:
        slot, fuse = slots[component.value], versions[component.value]
        image = slot["image"]
        lines.append(f"{component.value}: slot {slot['active']}, {image['name']} "
                     f"(security version {image['security_version']}, fused {fuse['fused']})")
    store, apps = status["store"], status["app_certificate_store"]
    assert isinstance(store, dict) and isinstance(apps, dict)
    lines.append(f"{store['label']} (TLS and updates; a real device does not list it):")
    for cert in store["certificates"]:
        expired = "" if cert["valid_at_device_time"] else " (not valid at device time)"
        lines.append(f"  root {cert['name']}: until {cert['not_after']}{expired}")
    count = counted(len(apps["certificates"]), "certificate")
    lines.append(f"{apps['label']} (apps, device REST API): {count}, "
                 f"{apps['available_space']} of {apps['available_when_empty']} bytes free")
    lines += [f"  {line}" for line in app_cert_lines(apps["certificates"])]
    return lines


def app_cert_lines(certificates: list[dict[str, object]]) -> list[str]:
    """One line per app-store certificate (as `CertInfo.to_json` gives it)."""
    return [f"{c['id']}: {c['type']}, {c['bytes']} bytes, {c['subject_name']}, "
            f"until {c['not_after']}" for c in certificates]


def _when(at: float) -> str:
    return iso(as_utc(at))


def _event(info: SysEventInfo) -> str:
    allowance = (f", may defer up to {info.max_deferral_minutes} min"
                 if info.status is EventStatus.PENDING and info.update_type is not None else "")
    return f"{info.event.value} ({info.status.value}{allowance})"


def event_text(info: SysEventInfo) -> str:
    return f"{_when(info.at)} {_event(info)}"


def call_text(call: SysEventCall) -> str:
    asked = "" if call.requested_minutes is None else f" {call.requested_minutes} min"
    if not call.ok:
        return f"{_when(call.at)} {call.call}{asked}: refused, {errorcode[call.errno]} ({call.why})"
    granted = "" if call.granted_minutes is None else f": granted {call.granted_minutes:g} min"
    why = f" ({call.why})" if call.why else ""
    return f"{_when(call.at)} {call.call}{asked}{granted or ': ok'}{why}"


def app_text(app: AppReport) -> list[str]:
    """One app: its capabilities, then what it was told and the calls it made, in order."""
    held = ", ".join(app.manifest.capabilities) or "no SysEvent capability"
    head = f"app {app.manifest.name} [{held}]"
    if not app.registered:
        reason = "never registered" if app.registration is None else call_text(app.registration)
        return [f"{head}: told nothing ({reason})"]
    lines = [head + ":"]
    for entry in app.log:
        lines.append("  " + (call_text(entry) if isinstance(entry, SysEventCall)
                             else f"{_when(entry.at)} told {_event(entry)}"))
    granted = [c for c in app.calls if c.call == "DeferEvent" and c.ok]
    refused = [c for c in app.calls if not c.ok]
    lines.append(f"  deferrals granted: {len(granted)} ({app.granted_minutes:g} min in all); "
                 f"calls refused: {len(refused)}")
    return lines


def update_text(result: UpdateResult) -> list[str]:
    lines = [event_text(info) for info in result.events]
    for app in result.apps:
        lines += app_text(app)
    offer = result.offer
    if offer is not None:
        lines.append(f"install deferred by {offer.deferred_minutes:g} minutes in all (allowance "
                     f"{offer.allowance_minutes} minutes from {_when(offer.learned_at)}, when "
                     "the device learned of the update)")
        lines.append(f"Final at {_when(offer.final_at)}; install at {_when(offer.install_at)}")
    if result.images:
        lines.append("installed: " + ", ".join(
            f"{i.component.value} {i.name} (security version {i.security_version})"
            for i in result.images))
    if result.boot is not None:
        boot = result.boot
        state = "reverted to the previous images" if boot.reverted else "trial confirmed"
        lines.append(f"rebooted (cause {boot.cause.name}): {state}")
    lines.append(f"outcome: {result.outcome.value}")
    return lines


def check_text(check: ScheduledCheck, interval_hours: float) -> str:
    """One line for a scheduled check: when, the boot it ran in, why, and how it ended."""
    when = _when(check.at)
    why = ("first connection since the device booted" if check.reason is Reason.FIRST_CONNECTION
           else f"{interval_hours:g} h after the previous check")
    head = f"{when} boot {check.boot_count}, up {duration_text(check.uptime_s)}: check ({why}): "
    result = check.result
    if result is None:
        error = check.error
        return head + f"failed ({type(error).__name__}): {error}"
    if result.outcome is UpdateOutcome.NO_UPDATE:
        return head + "no update available"
    installed = ", ".join(f"{i.name} (security version {i.security_version})"
                          for i in result.images)
    deferred = (f", install deferred by {result.deferred_minutes:g} minutes"
                if result.deferred_minutes else "")
    boot = result.boot
    cause = "" if boot is None else f" (cause {boot.cause.name})"
    if result.outcome is UpdateOutcome.REVERTED:
        return head + (f"installed {installed}{deferred}; the device reset{cause} and the "
                       "trial boot failed: reverted to the previous images")
    return head + f"installed {installed}{deferred}; the device reset{cause}: trial confirmed"


def run_text(report: RunReport, boot_count: int, uptime: float | None) -> list[str]:
    """The summary after a run's check lines."""
    outcomes = [check.outcome for check in report.checks]
    started, ended = _when(report.started), _when(report.ended)
    checks = len(outcomes)
    lines = [f"ran {report.hours:g} h of device time, {started} to {ended}: "
             f"{counted(checks, 'check')} (at each first connection after a boot, then "
             f"every {report.interval_hours:g} h); {outcomes.count('installed')} installed, "
             f"{outcomes.count('reverted')} reverted, {outcomes.count('failed')} failed"]
    if report.halted is not None:
        lines.append(f"the device halted: {type(report.halted).__name__}: {report.halted}")
    lines.append(f"now: OS version {OS_VERSION}, boot {boot_count} since power-up, "
                 f"up {duration_text(uptime)}")
    return lines


#: What each outcome of a cut means (the sweep boots the device after every cut).
SWEEP_OUTCOMES = {
    "old": "booted the old set (the keystore and store it had before the update)",
    "new": "booted the new set (the update's)",
    "mixed": "booted a mix of old and new (a violation)",
    "none": "did not boot (a violation)",
}


def sweep_text(report: SweepReport) -> list[str]:
    lines = [f"{counted(report.ops, 'flash operation')} x {counted(len(report.modes), 'mode')} "
             f"({', '.join(report.modes)}) = {counted(report.cut_points, 'cut point')}: the "
             "update run again and power cut at each, then the device booted and checked",
             "after the cut, the device:"]
    lines += [f"  {SWEEP_OUTCOMES.get(name, name)}: {counted(count, 'time')}"
              for name, count in sorted(report.outcomes.items()) if count]
    lines.append(f"violations: {len(report.violations)}")
    lines += [f"  invariant {v.invariant} at cut {v.point}: {v.detail}" for v in report.violations]
    lines.append(f"{report.seconds:.2f} s")
    return lines
