"""``mailplane credentials``: expiry per credential from the stack config, a readable PEM or the deployed outputs."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stack_copies import ROOT, write_stack_copy

from mailplane.cli import main


def run(*args: str):
    return CliRunner().invoke(main, ["credentials", "--today", "2026-11-22", *args])


def statuses(result) -> list[tuple[str, str, str | None, str, str]]:
    return [
        (c["stack"], c["name"], c["expires"], c["status"], c["source"])
        for c in json.loads(result.output)["credentials"]
    ]


def self_signed_pem(not_after: dt.datetime) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailplane-test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def test_example_stacks__schedule_and_federated__exit_0(monkeypatch):
    monkeypatch.chdir(ROOT)

    result = run("--format", "json")

    assert result.exit_code == 0, result.output
    assert statuses(result) == [
        ("example-delegated-graph-sync", "certificate", None, "unknown", "none"),
        ("example-delegated-imap-smtp", "client-secret-a", "2027-07-01", "ok", "rotation schedule"),
        ("example-delegated-imap-smtp", "client-secret-b", "2027-01-01", "ok", "rotation schedule"),
        ("example-inbound-import", "helpdesk-prod-workload", None, "no-expiry", "none"),
        ("example-outbound-send", "client-secret-a", "2027-01-01", "ok", "rotation schedule"),
        ("example-outbound-send", "client-secret-b", "2027-07-01", "ok", "rotation schedule"),
    ]


def test_previous_slot_within_window__retiring_not_a_warning__exit_0():
    result = run("--warn-days", "45", str(ROOT / "stacks" / "Pulumi.example-outbound-send.yaml"))

    assert result.exit_code == 0, result.output
    assert "retiring  client-secret client-secret-a          expires 2027-01-01 (40 days)" in result.output
    assert "1 previous client-secret slot retires as planned" in result.output


def test_deployed_outputs_show_a_stale_rotation__expired__exit_1(tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps({"clientId": "x", "credentialExpiries": {"client-secret-a": "2026-07-01T00:00:00Z"}}),
        encoding="utf-8",
    )

    result = run(
        "--stack-output",
        f"example-delegated-imap-smtp={outputs}",
        str(ROOT / "stacks" / "Pulumi.example-delegated-imap-smtp.yaml"),
    )

    assert result.exit_code == 1
    assert (
        "expired   client-secret client-secret-a          expires 2026-07-01 (-144 days)  from stack output  [active; "
        "the schedule expects 2027-07-01: rotation has not been deployed, run pulumi up --refresh]"
    ) in result.output
    assert (
        "example-delegated-imap-smtp: client-secret-a expired on 2026-07-01. Run pulumi up --refresh for this stack "
        "so the rotation schedule issues a new secret."
    ) in result.output


def test_readable_certificate_expiring_in_20_days__expiring__exit_1(tmp_path):
    pem = self_signed_pem(dt.datetime(2026, 12, 12, tzinfo=dt.UTC))

    def plain_pem(config):
        config["mailplane:certificatePem"] = pem

    stack = write_stack_copy(tmp_path, "example-delegated-graph-sync", plain_pem)

    result = run("--format", "json", str(stack))

    assert result.exit_code == 1
    assert statuses(result) == [
        ("example-delegated-graph-sync", "certificate", "2026-12-12", "expiring", "certificate")
    ]


def test_certificate_expiry_from_stack_output__ok(tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"credentialExpiries": {"certificate": "2027-11-01T00:00:00Z"}}), encoding="utf-8")

    result = run(
        "--format",
        "json",
        "--stack-output",
        str(outputs),
        str(ROOT / "stacks" / "Pulumi.example-delegated-graph-sync.yaml"),
    )

    assert result.exit_code == 0
    assert statuses(result) == [("example-delegated-graph-sync", "certificate", "2027-11-01", "ok", "stack output")]


def test_stack_output_without_stack_name__several_stacks__usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    outputs = tmp_path / "outputs.json"
    outputs.write_text("{}", encoding="utf-8")

    result = run("--stack-output", str(outputs))

    assert result.exit_code == 2
    assert "say which stack it belongs to (STACK=FILE)" in result.output
