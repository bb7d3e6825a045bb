//! Probes against servers that fail: closed ports, silence, wrong greetings, refusals,
//! oversized and truncated replies, protocol garbage, and addresses outside the allow-list,
//! which are never contacted. The misbehaving servers are the tests' own (`probes_support::
//! fake`); every probe must end down, with a precise reason, within its timeout.

mod probes_support;

use std::time::Duration;

use futures::future::join_all;
use oem_operator::monitor::probes::{ServiceName, Target};
use probes_support::fake::Fake;
use probes_support::{
    SHORT_TIMEOUT, assert_down, assert_up, closed_port, prober, prober_allowing, target,
};

/// Every service with a TCP port.
const TCP_SERVICES: [ServiceName; 12] = [
    ServiceName::Http,
    ServiceName::Https,
    ServiceName::Ftp,
    ServiceName::Ftps,
    ServiceName::Smtp,
    ServiceName::Smtps,
    ServiceName::Pop3,
    ServiceName::Pop3s,
    ServiceName::Imap,
    ServiceName::Imaps,
    ServiceName::Postgresql,
    ServiceName::Mysql,
];

#[tokio::test]
async fn every_service_is_down_on_a_closed_port() {
    let port = closed_port();
    let prober = prober(SHORT_TIMEOUT);
    for service in TCP_SERVICES {
        let outcome = prober.probe(&target(service, port)).await;
        assert_down(&outcome, &format!("connecting to 127.0.0.1:{port}"));
        assert_down(&outcome, "Connection refused");
        assert_eq!(outcome.failure, Some("connect"));
    }
}

#[tokio::test]
async fn a_silent_server_times_out_for_every_service() {
    let fake = Fake::silent().await;
    let prober = prober(SHORT_TIMEOUT);
    let targets: Vec<Target> = TCP_SERVICES
        .iter()
        .map(|&service| target(service, fake.port))
        .collect();
    let outcomes = join_all(targets.iter().map(|t| prober.probe(t))).await;
    for outcome in outcomes {
        let phase = match outcome.service {
            ServiceName::Https | ServiceName::Smtps | ServiceName::Pop3s | ServiceName::Imaps => {
                "completing the TLS handshake"
            }
            ServiceName::Http => "reading the status line",
            ServiceName::Postgresql => "reading the answer to SSLRequest",
            ServiceName::Mysql => "reading the handshake",
            _ => "reading the greeting",
        };
        assert_down(&outcome, &format!("no answer within 500ms while {phase}"));
        assert_eq!(outcome.failure, Some("timeout"));
        assert!(outcome.duration >= SHORT_TIMEOUT, "{outcome:?}");
        assert!(outcome.duration < SHORT_TIMEOUT * 2, "{outcome:?}");
    }
}

#[tokio::test]
async fn a_wrong_greeting_is_down_for_every_service() {
    let fake = Fake::greeting(b"SSH-2.0-OpenSSH_9.2p1\r\n").await;
    let prober = prober(SHORT_TIMEOUT);
    for service in TCP_SERVICES {
        let outcome = prober.probe(&target(service, fake.port)).await;
        let expected = match service {
            ServiceName::Ftp | ServiceName::Ftps | ServiceName::Smtp => "has no 3-digit code",
            ServiceName::Pop3 => "expected +OK",
            ServiceName::Imap => "expected \"* OK\" greeting",
            ServiceName::Http => "malformed status line",
            // "S" reads as "SSL supported"; the rest then as an oversized message.
            ServiceName::Postgresql => "exceeds the 8192-byte limit",
            ServiceName::Mysql => "packet of 4739923 bytes exceeds the 16384-byte limit",
            _ => "TLS handshake with localhost",
        };
        assert_down(&outcome, expected);
    }
}

#[tokio::test]
async fn an_smtp_554_greeting_is_refused() {
    let fake = Fake::greeting(b"554 5.3.2 no service here\r\n").await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Smtp, fake.port))
        .await;
    assert_down(&outcome, "server refused: expected 220, got 554");
    assert_eq!(outcome.failure, Some("refused"));
}

#[tokio::test]
async fn an_smtp_server_rejecting_ehlo_is_down() {
    let fake = Fake::scripted(b"220 mx ESMTP\r\n", |_| Some(b"502 5.5.1 no\r\n")).await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Smtp, fake.port))
        .await;
    assert_down(&outcome, "reading the reply to EHLO: server refused");
}

#[tokio::test]
async fn a_multiline_ehlo_reply_is_followed_to_its_end() {
    let fake = Fake::scripted(b"220-mx ESMTP\r\n220 welcome\r\n", |line| {
        line.starts_with("EHLO")
            .then_some(&b"250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"[..])
    })
    .await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Smtp, fake.port))
        .await;
    assert_up(&outcome);
    assert_eq!(outcome.reason, "220 greeting, 250 to EHLO (2 extensions)");
}

#[tokio::test]
async fn an_oversized_reply_line_is_down() {
    static HUGE: [u8; 9000] = [b'a'; 9000];
    let fake = Fake::greeting(&HUGE).await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Smtp, fake.port))
        .await;
    assert_down(
        &outcome,
        "reading the greeting: answer longer than 8192 bytes",
    );
    assert_eq!(outcome.failure, Some("oversized"));
}

#[tokio::test]
async fn a_truncated_multiline_greeting_is_down() {
    let fake = Fake::says_and_closes(b"220-first line of many\r\n").await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Ftp, fake.port))
        .await;
    assert_down(
        &outcome,
        "connection closed by the server while reading the greeting",
    );
}

#[tokio::test]
async fn a_line_cut_off_mid_way_is_down() {
    let fake = Fake::says_and_closes(b"+OK ready but no end").await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Pop3, fake.port))
        .await;
    assert_down(&outcome, "truncated line \"+OK ready but no end\"");
}

#[tokio::test]
async fn ftps_without_auth_tls_is_down() {
    let fake = Fake::scripted(b"220 old ftpd\r\n", |_| Some(b"502 not implemented\r\n")).await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Ftps, fake.port))
        .await;
    assert_down(
        &outcome,
        "reading the reply to AUTH TLS: server refused: expected 234, got 502",
    );
}

#[tokio::test]
async fn bytes_injected_before_the_tls_handshake_are_down() {
    let fake = Fake::scripted(b"220 ftpd\r\n", |_| {
        Some(b"234 go ahead\r\n250 injected\r\n")
    })
    .await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Ftps, fake.port))
        .await;
    assert_down(&outcome, "unexpected bytes before the TLS handshake");
}

#[tokio::test]
async fn a_pop3_err_greeting_is_refused() {
    let fake = Fake::greeting(b"-ERR maintenance\r\n").await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Pop3, fake.port))
        .await;
    assert_down(&outcome, "server refused: -ERR \"maintenance\"");
}

#[tokio::test]
async fn an_imap_bye_greeting_is_refused() {
    let fake = Fake::greeting(b"* BYE too many connections\r\n").await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Imap, fake.port))
        .await;
    assert_down(&outcome, "server refused: * BYE \"too many connections\"");
}

#[tokio::test]
async fn postgresql_unexpected_ssl_answer_is_down() {
    let fake = Fake::greeting(b"X").await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Postgresql, fake.port))
        .await;
    assert_down(
        &outcome,
        "reading the answer to SSLRequest: unexpected answer byte 0x58",
    );
}

/// A PostgreSQL stand-in: answers the SSLRequest 'N', then the StartupMessage with an
/// ErrorResponse of these fields.
async fn postgres_answering_error(fields: &'static [u8]) -> Fake {
    Fake::start(move |mut stream| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 512];
        let _ = stream.read(&mut buf).await; // SSLRequest
        let _ = stream.write_all(b"N").await;
        let _ = stream.read(&mut buf).await; // StartupMessage
        let mut reply = vec![b'E'];
        reply.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
        reply.extend_from_slice(fields);
        let _ = stream.write_all(&reply).await;
    })
    .await
}

#[tokio::test]
async fn postgresql_error_answers_are_up_and_reported() {
    let fake = postgres_answering_error(b"SFATAL\0C28000\0Mno pg_hba.conf entry\0\0").await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Postgresql, fake.port))
        .await;
    assert_up(&outcome);
    assert_eq!(
        outcome.reason,
        "SSLRequest answered 'N', StartupMessage answered with error FATAL 28000 \
         \"no pg_hba.conf entry\""
    );
}

#[tokio::test]
async fn postgresql_too_many_clients_is_down() {
    let fake =
        postgres_answering_error(b"SFATAL\0C53300\0Msorry, too many clients already\0\0").await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Postgresql, fake.port))
        .await;
    assert_down(&outcome, "server refused: error 53300");
}

#[tokio::test]
async fn a_mysql_err_greeting_is_down() {
    let mut packet = vec![0x17, 0, 0, 0, 0xff, 0x10, 0x04];
    packet.extend_from_slice(b"Too many connections");
    let packet: &'static [u8] = packet.leak();
    let fake = Fake::greeting(packet).await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Mysql, fake.port))
        .await;
    assert_down(
        &outcome,
        "server refused: ERR 1040 \"Too many connections\"",
    );
}

#[tokio::test]
async fn a_truncated_mysql_handshake_is_down() {
    let fake = Fake::says_and_closes(b"\x50\0\0\0\x0a5.5.5-10").await;
    let outcome = prober(SHORT_TIMEOUT)
        .probe(&target(ServiceName::Mysql, fake.port))
        .await;
    assert_down(
        &outcome,
        "connection closed by the server while reading the handshake",
    );
}

#[tokio::test]
async fn an_address_outside_the_allow_list_is_never_contacted() {
    let fake = Fake::greeting(b"220 hello\r\n").await;
    let prober = prober_allowing(SHORT_TIMEOUT, &["127.0.0.2/32"]);
    for service in ServiceName::ALL {
        let outcome = prober.probe(&target(service, fake.port)).await;
        assert_down(&outcome, "address 127.0.0.1 not in allow-list");
        assert_eq!(outcome.failure, Some("not_allowed"));
        assert_eq!(outcome.ping_method, None);
    }
    assert_eq!(fake.accepted(), 0);
}

#[tokio::test]
async fn a_host_name_is_checked_after_resolution() {
    let fake = Fake::greeting(b"220 hello\r\n").await;
    let prober = prober_allowing(SHORT_TIMEOUT, &["10.0.0.0/8"]);
    let target = Target::new(ServiceName::Ftp, "localhost", Some(fake.port));
    let outcome = prober.probe(&target).await;
    assert_down(&outcome, "not in allow-list");
    assert_eq!(fake.accepted(), 0);
}

#[tokio::test]
async fn a_silent_tcp_fallback_is_bounded_by_the_timeout() {
    // ICMP disabled, fallback to a port that accepts: still up, within the timeout.
    let fake = Fake::silent().await;
    let mut config = prober(SHORT_TIMEOUT).config().clone();
    config.icmp = false;
    let prober = oem_operator::monitor::probes::Prober::new(config).unwrap();
    let outcome = prober.probe(&target(ServiceName::Ping, fake.port)).await;
    assert_up(&outcome);
    assert!(outcome.duration < SHORT_TIMEOUT + Duration::from_millis(100));
}

#[tokio::test]
async fn ping_without_icmp_and_without_a_port_is_down() {
    let mut config = prober(SHORT_TIMEOUT).config().clone();
    config.icmp = false;
    let prober = oem_operator::monitor::probes::Prober::new(config).unwrap();
    let outcome = prober
        .probe(&Target::new(ServiceName::Ping, "127.0.0.1", None))
        .await;
    assert_down(&outcome, "no TCP port to fall back to");
}
