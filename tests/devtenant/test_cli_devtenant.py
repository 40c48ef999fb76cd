import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from mailplane.cli import main


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli__seed_dir_and_ctrl_c__serves_seeded_mail_then_exits_0(tmp_path):
    inbox = tmp_path / "shared@contoso.com"
    (inbox / "Failed").mkdir(parents=True)
    (inbox / "01.eml").write_bytes(b"From: a@example.com\r\nSubject: one\r\n\r\nbody\r\n")
    (inbox / "Failed" / "02.eml").write_bytes(b"From: a@example.com\r\nSubject: two\r\n\r\nbody\r\n")
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from mailplane.cli import main; main()",
            "devtenant",
            "--port",
            str(port),
            "--seed",
            str(tmp_path),
            "--mailbox",
            "alerts@contoso.com",
            "--concurrency",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        while not any(line.startswith("Press Ctrl-C") for line in lines):
            line = process.stdout.readline()
            assert line, process.stderr.read()
            lines.append(line.strip())
        assert f"Graph:    http://127.0.0.1:{port}/v1.0" in lines
        assert "Mailbox:  shared@contoso.com (user, 2 messages)" in lines
        response = httpx.get(
            f"http://127.0.0.1:{port}/v1.0/users/shared@contoso.com/mailFolders/inbox/messages",
            headers={"Authorization": "Bearer t"},
        )
        assert [m["subject"] for m in response.json()["value"]] == ["one"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0


def test_cli__seed_dir_not_named_after_mailbox__usage_error_exit_2(tmp_path):
    (tmp_path / "not-a-mailbox").mkdir()
    result = CliRunner().invoke(main, ["devtenant", "--port", "0", "--seed", str(tmp_path)])
    assert result.exit_code == 2
    assert "the directory name is not a mailbox address" in result.output


def test_cli__port_in_use__usage_error_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = CliRunner().invoke(main, ["devtenant", "--port", str(busy.getsockname()[1])])
    assert result.exit_code == 2
    assert "Pick another --port" in result.output


@pytest.mark.parametrize("option", ["--port", "--seed", "--concurrency", "--window-limit", "--latency-ms"])
def test_cli__help__documents_options(option):
    assert option in CliRunner().invoke(main, ["devtenant", "--help"]).output
