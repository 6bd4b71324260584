"""Feeds on disk and over HTTP(S) from 127.0.0.1: bad input leaves the device as it was, and
the next check tries again."""

from __future__ import annotations

import shutil
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from firmware_model.agent.feed import (
    MANIFEST_NAME,
    DirectoryFeed,
    Feed,
    HttpFeed,
    channel_location,
    image_file_name,
    open_feed,
)
from firmware_model.agent.updater import UpdateOutcome, Updater
from firmware_model.device.model import Device
from firmware_model.device.provision import FactoryImages
from firmware_model.errors import (
    FeedError,
    FeedLocationError,
    FwModelError,
    ImageFormatError,
    ManifestMismatchError,
)
from firmware_model.image.manifest import ManifestEntry
from firmware_model.image.package import parse_package
from hal.soft.machine import SoftwareMachine
from policy.cli import ExitCode
from policy.cli import exit_code as exit_code_of
from tests.firmware_model.devicelab import SMALL, Lab, Outside, small_device
from tests.firmware_model.tlslab import Authority, FeedFaults, feed_server, server_context

NEW_STORE = "certstore-2025-02"


def copy_feed(lab: Lab, into: Path) -> Path:
    folder = into / "Retail"
    shutil.copytree(lab.feed_dir(), folder)
    return folder


def store_file(lab: Lab) -> str:
    return image_file_name(parse_package(lab.image(NEW_STORE)).image_id)


def refused_then_retried(device: Device, bad: Feed, good: Feed,
                         error: type[FwModelError]) -> None:
    """`bad` is refused with `error` and changes nothing; `good`, the next check, installs."""
    before = Outside.of(device)
    with pytest.raises(error):
        Updater(device).check_for_update(bad)
    assert Outside.of(device) == before
    result = Updater(device).check_for_update(good)
    assert result.outcome is UpdateOutcome.INSTALLED


# --- feed locations ------------------------------------------------------------------------


def test_a_feed_location_names_a_channel_folder_or_the_folder_of_channels() -> None:
    assert channel_location("images/build/feeds", None) == "images/build/feeds/Retail"
    assert channel_location("images/build/feeds/", "RetailEval") == (
        "images/build/feeds/RetailEval")
    assert channel_location("http://127.0.0.1:8000/Retail/", "Retail") == (
        "http://127.0.0.1:8000/Retail/")
    with pytest.raises(FeedLocationError, match="is the Retail channel, not RetailEval"):
        channel_location("feeds/Retail", "RetailEval")
    with pytest.raises(FeedLocationError, match="unknown channel"):
        channel_location("feeds", "Beta")


def test_only_loopback_urls_and_known_schemes_are_feeds(tmp_path: Path) -> None:
    for location, reason in [("https://updates.example.com/feeds", "loopback"),
                             ("https://192.168.35.2/feeds", "loopback"),
                             ("ftp://127.0.0.1/feeds", "scheme")]:
        with pytest.raises(FeedLocationError, match=reason) as refused:
            open_feed(location)
        assert exit_code_of(refused.value) == ExitCode.BAD_INPUT
    assert isinstance(open_feed("http://localhost:1/feeds"), HttpFeed)
    folder = tmp_path / "my-feed"
    folder.mkdir()
    (folder / MANIFEST_NAME).write_bytes(b"x")
    feed = open_feed(str(folder))
    assert isinstance(feed, DirectoryFeed) and feed.root == folder


# --- directory feeds -----------------------------------------------------------------------


def test_a_feed_path_or_channel_folder_that_is_not_there_is_bad_usage_not_a_feed_down(
    device: Device, device_lab: Lab, tmp_path: Path
) -> None:
    location = tmp_path / "feeds"
    with pytest.raises(FeedLocationError, match="no feed at") as wrong:
        open_feed(str(location))
    assert exit_code_of(wrong.value) == ExitCode.BAD_INPUT
    location.mkdir()
    with pytest.raises(FeedLocationError, match="has no RetailEval channel folder"):
        open_feed(str(location), "RetailEval")
    location.rmdir()
    copy_feed(device_lab, location)
    result = Updater(device).check_for_update(open_feed(str(location)))
    assert result.outcome is UpdateOutcome.INSTALLED


def test_a_half_written_image_file_is_a_feed_error(device_lab: Lab, tmp_path: Path) -> None:
    device = small_device(device_lab)
    folder = copy_feed(device_lab, tmp_path)
    image = folder / store_file(device_lab)
    whole = image.read_bytes()
    image.write_bytes(whole[: len(whole) // 2])
    before = Outside.of(device)
    with pytest.raises(FeedError, match="served with 2146 of its 4292 bytes"):
        Updater(device).check_for_update(DirectoryFeed(folder))
    assert Outside.of(device) == before
    image.write_bytes(whole)
    result = Updater(device).check_for_update(DirectoryFeed(folder))
    assert result.outcome is UpdateOutcome.INSTALLED


@pytest.mark.parametrize("manifest", [b"", b"not an image package", b"\0" * 400])
def test_a_malformed_manifest_is_refused_and_the_next_check_works(
    device_lab: Lab, tmp_path: Path, manifest: bytes
) -> None:
    device = small_device(device_lab)
    folder = copy_feed(device_lab, tmp_path)
    good = (folder / MANIFEST_NAME).read_bytes()
    (folder / MANIFEST_NAME).write_bytes(manifest)
    before = Outside.of(device)
    with pytest.raises(ImageFormatError):
        Updater(device).check_for_update(DirectoryFeed(folder))
    assert Outside.of(device) == before
    (folder / MANIFEST_NAME).write_bytes(good)
    result = Updater(device).check_for_update(DirectoryFeed(folder))
    assert result.outcome is UpdateOutcome.INSTALLED


def test_an_image_smaller_than_its_manifest_entry_is_refused(device_lab: Lab) -> None:
    device = small_device(device_lab)
    store = device_lab.image(NEW_STORE)
    entry = ManifestEntry.for_image(parse_package(store))
    oversized = device_lab.manifest([], entries=[replace(entry, size=entry.size + 8)])
    bad = device_lab.feed()
    bad.files = {**bad.files, MANIFEST_NAME: oversized}
    refused_then_retried(device, bad, device_lab.feed(), ManifestMismatchError)


# --- HTTP(S) feeds -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_feed_server_that_is_down_is_a_feed_error(device_lab: Lab) -> None:
    device = small_device(device_lab)
    before = Outside.of(device)
    with pytest.raises(FeedError, match="cannot fetch"):
        Updater(device).check_for_update(open_feed(f"http://127.0.0.1:{free_port()}/Retail"))
    assert Outside.of(device) == before
    with feed_server(device_lab.folder / "feeds") as url:
        result = Updater(device).check_for_update(open_feed(url + "Retail"))
    assert result.outcome is UpdateOutcome.INSTALLED


def test_a_half_served_response_is_a_feed_error_and_the_next_check_works(
    device_lab: Lab,
) -> None:
    device = small_device(device_lab)
    faults = FeedFaults(half={store_file(device_lab)})
    with feed_server(device_lab.folder / "feeds", faults=faults) as url:
        feed = open_feed(url + "Retail")
        before = Outside.of(device)
        with pytest.raises(FeedError, match="cut short"):
            Updater(device).check_for_update(feed)
        assert Outside.of(device) == before
        faults.half.clear()
        assert Updater(device).check_for_update(feed).outcome is UpdateOutcome.INSTALLED
    assert faults.served.count(store_file(device_lab)) == 2


def test_a_file_the_server_does_not_have_is_a_feed_error(device_lab: Lab) -> None:
    device = small_device(device_lab)
    faults = FeedFaults(missing={MANIFEST_NAME})
    with feed_server(device_lab.folder / "feeds", faults=faults) as url, \
            pytest.raises(FeedError, match="HTTP 404"):
        Updater(device).check_for_update(open_feed(url + "Retail"))


def test_an_https_feed_is_trusted_through_the_device_store(device_lab: Lab, tmp_path: Path) -> None:
    """The device reaches its feed over TLS with its own store, at its own clock."""
    feed_root = Authority.root("Lab Feed Root")
    key, leaf = feed_root.server()
    old_store = device_lab.store([("LabFeedRoot", feed_root.certificate)], 1)
    new_store = device_lab.store([("LabFeedRoot", feed_root.certificate),
                                  *device_lab.roots(NEW_STORE)], 2)
    folder = tmp_path / "feeds" / "Retail"
    folder.mkdir(parents=True)
    (folder / MANIFEST_NAME).write_bytes(device_lab.manifest([new_store]))
    (folder / image_file_name(parse_package(new_store).image_id)).write_bytes(new_store)
    device = Device(SoftwareMachine(None, SMALL))
    device.provision(FactoryImages(device_lab.factory.root_hash,
                                   device_lab.image("keystore-2024"), old_store))
    context = server_context(tmp_path / "tls", key, [leaf])
    with feed_server(folder.parent, context) as url:
        stranger = small_device(device_lab)  # trusts only the real roots: not the lab feed
        with pytest.raises(FeedError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
            Updater(stranger).check_for_update(open_feed(url + "Retail",
                                                ssl_context=stranger.ssl_context()))
        feed = open_feed(url + "Retail", ssl_context=device.ssl_context())
        assert Updater(device).check_for_update(feed).outcome is UpdateOutcome.INSTALLED
    assert "DigiCert_Global_Root_G2" in device.store.names
