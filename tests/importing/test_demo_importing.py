"""The demo's import step: the example mail becomes the expected conversations; examples/ stays untouched."""

from __future__ import annotations

import datetime as dt

from mailplane.cli.demo_importing import import_examples


def test_demo_import_step__example_mail__threads_attachments_skips_and_routing_shown(repo_root, capsys):
    before = sorted(p.name for p in (repo_root / "examples").rglob("*"))

    import_examples(repo_root, dt.date(2026, 3, 2))

    out = capsys.readouterr().out
    assert "9 deliveries of 8 messages" in out
    assert "import support@fabrikam.com: 7 imported" in out
    assert "import billing@fabrikam.com: 1 imported, 1 already there" in out  # the copy to both teams: one ticket
    assert "import again support@fabrikam.com: 0 imported" in out
    printer = out[out.index("'Printer on 3rd floor prints only blank pages'") :].split("\n#", 1)[0]
    assert printer.count("Printer on 3rd floor prints only blank pages'") == 4  # the ticket and its three messages
    assert "document printer-log.txt" in printer
    assert "company='company-contoso'" in out
    assert "dana.diaz@fabrikam.com (participant, agent agent-dana)" in out
    assert "site-survey.mp4 (27,262,976 bytes) SKIPPED: 27262976 bytes is over the attachment size limit" in out
    assert "embeddedFile error-809.png" in out
    assert "Rechnung Nr. 4711 \u2013 Frage zur Umsatzsteuer" in out  # an en dash, decoded from RFC 2047
    assert "Jörg Müller" in out
    assert "9 mailbox copies recorded: 9 read" in out
    assert sorted(p.name for p in (repo_root / "examples").rglob("*")) == before
