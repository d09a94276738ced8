"""The mail server fixtures behave like the real servers the email channel will meet."""

from __future__ import annotations

import asyncio
import imaplib
import socket
import time
from datetime import UTC, datetime
from email.message import EmailMessage

import aiosmtplib
import pytest

from tests.mailservers import DovecotServer, MailUser, SmtpServer

pytest_plugins = ["tests.mailservers"]  # the `dovecot` and `smtp_server` fixtures


def raw_message(subject: str) -> bytes:
    return (
        f"From: Ann Customer <ann@customer.test>\r\n"
        f"To: support@omnicrm.test\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@customer.test>\r\n"
        f"\r\n"
        f"Hello, {subject}.\r\n"
    ).encode()


def fetch_raw(dovecot: DovecotServer, user: MailUser, folder: str, uid: int) -> bytes:
    with dovecot.imap(user) as connection:
        connection.select(f'"{folder}"', readonly=True)
        status, data = connection.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert status == "OK"
    literal: bytes = data[0][1]
    return literal


def internal_date(dovecot: DovecotServer, user: MailUser, folder: str, uid: int) -> bytes:
    with dovecot.imap(user) as connection:
        connection.select(f'"{folder}"', readonly=True)
        _, data = connection.uid("FETCH", str(uid), "(INTERNALDATE)")
    return bytes(data[0]).split(b'INTERNALDATE "')[1].split(b'"')[0]


def outgoing(subject: str, to: str = "ann@customer.test") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "support@omnicrm.test"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(f"About {subject}.")
    return message


async def send(
    server: SmtpServer,
    message: EmailMessage,
    username: str | None = None,
    password: str | None = None,
    within: float = 5,
) -> None:
    await aiosmtplib.send(
        message,
        hostname=server.host,
        port=server.port,
        start_tls=False,
        username=username,
        password=password,
        timeout=within,
    )


# --- Dovecot -----------------------------------------------------------------------------


def test_appended_message_reads_back_with_its_flags_and_date(dovecot: DovecotServer) -> None:
    user = dovecot.add_user("ann")
    raw = raw_message("order 17")
    received = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)

    uid = dovecot.append(user, raw, flags=[r"\Seen", r"\Flagged"], date=received)

    assert dovecot.uids(user, "INBOX") == [uid]
    assert dovecot.flags(user, "INBOX", uid) == {r"\Seen", r"\Flagged"}
    assert fetch_raw(dovecot, user, "INBOX", uid) == raw
    assert internal_date(dovecot, user, "INBOX", uid) == b"01-May-2024 09:30:00 +0000"


def test_many_messages_are_appended_in_order(dovecot: DovecotServer) -> None:
    user = dovecot.add_user("batch")
    batch = [raw_message(f"message {number}") for number in range(20)]

    uids = dovecot.append_many(user, batch)

    assert dovecot.uids(user) == uids == sorted(uids)
    assert fetch_raw(dovecot, user, "INBOX", uids[7]) == batch[7]


def test_each_user_has_a_mailbox_of_its_own(dovecot: DovecotServer) -> None:
    ann, bob = dovecot.add_user("shared"), dovecot.add_user("shared")
    dovecot.append(ann, raw_message("for ann"))

    assert ann.login != bob.login
    assert len(dovecot.uids(ann)) == 1
    assert dovecot.uids(bob) == []
    with (
        pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"),
        dovecot.imap(MailUser(ann.login, bob.password)),
    ):
        pass


def test_folders_are_created_and_appended_to(dovecot: DovecotServer) -> None:
    user = dovecot.add_user()
    dovecot.create_folder(user, "Done by omnicrm")

    first = dovecot.append(user, raw_message("one"), folder="Done by omnicrm")
    second = dovecot.append(user, raw_message("two"), folder="Done by omnicrm")

    assert dovecot.uids(user, "Done by omnicrm") == [first, second]
    assert second > first
    assert dovecot.uids(user, "INBOX") == []
    assert dovecot.flags(user, "Done by omnicrm", first) == frozenset()
    with pytest.raises(KeyError):
        dovecot.flags(user, "Done by omnicrm", second + 1)


def test_idle_is_advertised_and_reports_new_mail(dovecot: DovecotServer) -> None:
    user = dovecot.add_user("idle")
    dovecot.append(user, raw_message("before"))
    with dovecot.imap(user) as connection:
        _, capabilities = connection.capability()
        assert b"IDLE" in capabilities[0].split()
        connection.select("INBOX")
        # imaplib has no IDLE before Python 3.14: speak it on the socket.
        connection.send(b"I1 IDLE\r\n")
        assert connection.readline().startswith(b"+ ")

        dovecot.append(user, raw_message("during idle"))

        connection.sock.settimeout(5)
        assert connection.readline() == b"* 2 EXISTS\r\n"
        connection.send(b"DONE\r\n")
        while not (line := connection.readline()).startswith(b"I1 "):
            assert line.startswith(b"* ")  # e.g. "* 2 RECENT"
        assert line.startswith(b"I1 OK")


@pytest.mark.parametrize("folder", ["INBOX", "Support"])
def test_reset_uidvalidity_brings_the_same_messages_back_under_new_uids(
    dovecot: DovecotServer, folder: str
) -> None:
    user = dovecot.add_user("rebuild")
    if folder != "INBOX":
        dovecot.create_folder(user, folder)
    received = datetime(2024, 2, 29, 23, 59, 1, tzinfo=UTC)
    first = dovecot.append(
        user, raw_message("first"), folder=folder, flags=[r"\Seen"], date=received
    )
    second = dovecot.append(user, raw_message("second"), folder=folder)
    before = dovecot.uidvalidity(user, folder)

    with dovecot.imap(user) as watcher:
        watcher.select(f'"{folder}"')
        renumbered = dovecot.reset_uidvalidity(user, folder)
        # A client that had the folder open is told its view is gone, as Dovecot does.
        with pytest.raises(imaplib.IMAP4.abort):
            watcher.noop()

    assert dovecot.uidvalidity(user, folder) != before
    assert list(renumbered) == [first, second]
    assert dovecot.uids(user, folder) == list(renumbered.values())
    assert not set(renumbered.values()) & {first, second}
    assert fetch_raw(dovecot, user, folder, renumbered[first]) == raw_message("first")
    assert fetch_raw(dovecot, user, folder, renumbered[second]) == raw_message("second")
    assert dovecot.flags(user, folder, renumbered[first]) == {r"\Seen"}
    assert dovecot.flags(user, folder, renumbered[second]) == frozenset()
    assert internal_date(dovecot, user, folder, renumbered[first]) == b"29-Feb-2024 23:59:01 +0000"


def test_reset_uidvalidity_of_an_empty_folder(dovecot: DovecotServer) -> None:
    user = dovecot.add_user()
    before = dovecot.uidvalidity(user)

    assert dovecot.reset_uidvalidity(user) == {}
    assert dovecot.uidvalidity(user) != before


def test_an_outage_refuses_connections_and_keeps_the_mail(dovecot: DovecotServer) -> None:
    user = dovecot.add_user("outage")
    uid = dovecot.append(user, raw_message("kept"))
    uidvalidity = dovecot.uidvalidity(user)

    with dovecot.imap(user) as connected:
        connected.select("INBOX")
        dovecot.stop()
        try:
            assert not dovecot.running
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((dovecot.host, dovecot.port), timeout=2).close()
            with pytest.raises(imaplib.IMAP4.abort):
                connected.noop()
        finally:
            dovecot.start()

    assert dovecot.uids(user) == [uid]
    assert dovecot.uidvalidity(user) == uidvalidity
    dovecot.restart()
    assert dovecot.uids(user) == [uid]


def test_log_is_kept_for_debugging(dovecot: DovecotServer) -> None:
    user = dovecot.add_user("logged")
    dovecot.append(user, raw_message("logged"))

    # Dovecot's processes log through its log process, which writes the login line when it
    # gets to it, maybe after the client has gone (it did once under a loaded machine).
    deadline = time.monotonic() + 10
    while f"user=<{user.login}>" not in dovecot.log_path.read_text():
        assert time.monotonic() < deadline, dovecot.log_path.read_text()[-2000:]
        time.sleep(0.05)


# --- SMTP --------------------------------------------------------------------------------


async def test_smtp_server_records_what_aiosmtplib_sends(smtp_server: SmtpServer) -> None:
    await send(smtp_server, outgoing("Your order", to="ann@customer.test, bob@customer.test"))

    [mail] = await smtp_server.wait_for(1)
    assert mail.mail_from == "support@omnicrm.test"
    assert mail.rcpt_tos == ("ann@customer.test", "bob@customer.test")
    assert mail.message["Subject"] == "Your order"
    assert mail.message.get_content() == "About Your order.\r\n"  # as sent: CRLF
    assert b"Subject: Your order" in mail.raw
    assert mail.login is None


async def test_scripted_451_is_a_transient_failure(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(1, 451)

    with pytest.raises(aiosmtplib.SMTPDataError) as failure:
        await send(smtp_server, outgoing("first try"))
    assert failure.value.code == 451
    assert smtp_server.messages == []

    await send(smtp_server, outgoing("second try"))
    [mail] = await smtp_server.wait_for(1)
    assert mail.message["Subject"] == "second try"


async def test_scripted_550_is_a_permanent_failure(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(2, 550, "5.1.1 No such user")

    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPDataError) as failure:
            await send(smtp_server, outgoing("bounced"))
        assert failure.value.code == 550
        assert "5.1.1 No such user" in failure.value.message
    assert smtp_server.messages == []


async def test_failure_at_the_recipient(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(code=550, stage="rcpt")

    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as failure:
        await send(smtp_server, outgoing("unknown recipient"))
    assert failure.value.recipients[0].code == 550
    assert smtp_server.messages == []


async def test_dropped_connection(smtp_server: SmtpServer) -> None:
    smtp_server.drop_next()

    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await send(smtp_server, outgoing("lost"))
    assert smtp_server.messages == []

    await send(smtp_server, outgoing("after the drop"))
    assert len(await smtp_server.wait_for(1)) == 1


async def test_silence_is_a_timeout_for_the_client(smtp_server: SmtpServer) -> None:
    smtp_server.drop_next(stage="mail", after=1.0)

    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await send(smtp_server, outgoing("slow"), within=0.2)
    assert smtp_server.messages == []


async def test_credentials_are_checked(smtp_server: SmtpServer) -> None:
    smtp_server.require_auth("omnicrm", "app password")

    with pytest.raises(aiosmtplib.SMTPSenderRefused) as anonymous:
        await send(smtp_server, outgoing("anonymous"))
    assert anonymous.value.code == 530
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as wrong:
        await send(smtp_server, outgoing("wrong"), username="omnicrm", password="guess")
    assert wrong.value.code == 535

    await send(smtp_server, outgoing("signed in"), username="omnicrm", password="app password")
    [mail] = await smtp_server.wait_for(1)
    assert mail.login == "omnicrm"
    assert mail.message["Subject"] == "signed in"


async def test_wait_for_says_how_many_arrived(smtp_server: SmtpServer) -> None:
    await send(smtp_server, outgoing("only one"))

    with pytest.raises(TimeoutError, match=r"got 1 message\(s\), expected 2"):
        await smtp_server.wait_for(2, timeout=0.1)


async def test_teardown_closes_connections_left_open(smtp_server: SmtpServer) -> None:
    client = aiosmtplib.SMTP(hostname=smtp_server.host, port=smtp_server.port, start_tls=False)
    await client.connect()
    await client.ehlo()
    await smtp_server.stop()

    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.noop()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(smtp_server.host, smtp_server.port)


# --- Both --------------------------------------------------------------------------------


async def test_mail_sent_over_smtp_is_delivered_into_an_imap_mailbox(
    smtp_server: SmtpServer, dovecot: DovecotServer
) -> None:
    mailbox = dovecot.add_user("support")
    await send(smtp_server, outgoing("relayed", to=f"{mailbox.login}@omnicrm.test"))
    [mail] = await smtp_server.wait_for(1)

    # Stand in for the MTA between the two servers; off the event loop, as a test would.
    uid = await asyncio.to_thread(dovecot.append, mailbox, mail.raw)

    assert await asyncio.to_thread(fetch_raw, dovecot, mailbox, "INBOX", uid) == mail.raw
