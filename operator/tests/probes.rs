//! Every probe against its real server (nginx, vsftpd, postfix, dovecot, PostgreSQL,
//! MariaDB, started by `probes_support`), up; and the TLS failures a real server shows: an
//! expired or untrusted certificate, a plain port, a stopped server. Needs the daemons of
//! `e2e/daemons/install.sh` and root.

mod probes_support;

use std::time::{Duration, SystemTime};

use oem_operator::monitor::probes::{PingMethod, ServiceName};
use probes_support::daemons::{dovecot, mariadb, nginx, postfix, postgres, start_nginx, vsftpd};
use probes_support::{DAEMON_TIMEOUT, assert_down, assert_up, lab, prober, target};

fn epoch(secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
}

#[tokio::test]
async fn ping_reaches_loopback_over_icmp() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Ping, nginx().http))
        .await;
    assert_up(&outcome);
    // Root may open a raw ICMP socket even where ping_group_range forbids unprivileged ones.
    assert!(
        matches!(
            outcome.ping_method,
            Some(PingMethod::IcmpDatagram | PingMethod::IcmpRaw)
        ),
        "{outcome:#?}"
    );
    assert!(outcome.reason.starts_with("ICMP echo reply from 127.0.0.1"));
}

#[tokio::test]
async fn ping_falls_back_to_tcp_connect_when_icmp_is_disabled() {
    let mut config = prober(DAEMON_TIMEOUT).config().clone();
    config.icmp = false;
    let prober = oem_operator::monitor::probes::Prober::new(config).unwrap();
    let port = nginx().http;
    let outcome = prober.probe(&target(ServiceName::Ping, port)).await;
    assert_up(&outcome);
    assert_eq!(outcome.ping_method, Some(PingMethod::TcpConnect { port }));
    assert!(outcome.reason.contains("accepted"), "{}", outcome.reason);
}

#[tokio::test]
async fn http_is_up_against_nginx() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Http, nginx().http))
        .await;
    assert_up(&outcome);
    assert_eq!(outcome.reason, "HTTP 200 OK");
    assert!(outcome.server_version.unwrap().starts_with("nginx"));
}

#[tokio::test]
async fn http_status_503_is_down() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Http, nginx().failing))
        .await;
    assert_down(&outcome, "HTTP 503");
    assert_eq!(outcome.failure, Some("refused"));
}

#[tokio::test]
async fn https_is_up_and_reports_the_certificate_expiry() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Https, nginx().https))
        .await;
    assert_up(&outcome);
    assert_eq!(outcome.reason, "TLS handshake completed, HTTP 200 OK");
    assert_eq!(
        outcome.tls_cert_expiry,
        Some(epoch(lab().pki.server_not_after))
    );
    assert!(outcome.tls_cert_expiry_seconds(SystemTime::now()).unwrap() > 0.0);
}

#[tokio::test]
async fn https_with_an_expired_certificate_is_down_with_its_expiry() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Https, nginx().expired))
        .await;
    assert_down(&outcome, "certificate expired");
    assert_eq!(outcome.failure, Some("tls"));
    assert_eq!(
        outcome.tls_cert_expiry,
        Some(epoch(lab().pki.expired_not_after))
    );
    assert!(outcome.tls_cert_expiry_seconds(SystemTime::now()).unwrap() < 0.0);
}

#[tokio::test]
async fn https_with_an_untrusted_certificate_is_down() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Https, nginx().untrusted))
        .await;
    assert_down(&outcome, "UnknownIssuer");
    assert_eq!(outcome.failure, Some("tls"));
}

#[tokio::test]
async fn https_against_a_plain_http_port_is_down() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Https, nginx().http))
        .await;
    assert_down(&outcome, "TLS handshake with localhost");
}

#[tokio::test]
async fn https_for_a_name_the_certificate_lacks_is_down() {
    let target = target(ServiceName::Https, nginx().https).with_domain("shop.example.jp");
    let outcome = prober(DAEMON_TIMEOUT).probe(&target).await;
    assert_down(&outcome, "shop.example.jp");
    assert_eq!(outcome.failure, Some("tls"));
}

#[tokio::test]
async fn ftp_is_up_against_vsftpd() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Ftp, vsftpd()))
        .await;
    assert_up(&outcome);
    assert_eq!(outcome.reason, "220 greeting");
    assert!(outcome.server_version.unwrap().contains("vsFTPd"));
}

#[tokio::test]
async fn ftps_is_up_after_auth_tls_against_vsftpd() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Ftps, vsftpd()))
        .await;
    assert_up(&outcome);
    assert!(outcome.reason.contains("234 to AUTH TLS"));
    assert_eq!(
        outcome.tls_cert_expiry,
        Some(epoch(lab().pki.server_not_after))
    );
}

#[tokio::test]
async fn smtp_is_up_against_postfix() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Smtp, postfix().smtp))
        .await;
    assert_up(&outcome);
    assert!(outcome.reason.starts_with("220 greeting, 250 to EHLO"));
    assert!(outcome.server_version.unwrap().contains("Postfix"));
}

#[tokio::test]
async fn smtps_is_up_against_postfix() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Smtps, postfix().smtps))
        .await;
    assert_up(&outcome);
    assert!(outcome.reason.contains("250 to EHLO"));
    assert!(outcome.tls_cert_expiry.is_some());
}

#[tokio::test]
async fn pop3_is_up_against_dovecot() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Pop3, dovecot().pop3))
        .await;
    assert_up(&outcome);
    assert!(outcome.server_version.unwrap().contains("Dovecot"));
}

#[tokio::test]
async fn pop3s_is_up_against_dovecot() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Pop3s, dovecot().pop3s))
        .await;
    assert_up(&outcome);
    assert!(outcome.tls_cert_expiry.is_some());
}

#[tokio::test]
async fn imap_is_up_against_dovecot() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Imap, dovecot().imap))
        .await;
    assert_up(&outcome);
    assert_eq!(outcome.reason, "* OK greeting");
}

#[tokio::test]
async fn imaps_is_up_against_dovecot() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Imaps, dovecot().imaps))
        .await;
    assert_up(&outcome);
    assert!(outcome.tls_cert_expiry.is_some());
}

#[tokio::test]
async fn postgresql_is_up_against_postgres() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Postgresql, postgres()))
        .await;
    assert_up(&outcome);
    // TLS offered (the startup then goes over a new plain connection); trust authentication,
    // but the probe's role does not exist: an error answer, alive.
    assert!(
        outcome.reason.starts_with("SSLRequest answered 'S'"),
        "{}",
        outcome.reason
    );
    assert!(outcome.reason.contains("28000"), "{}", outcome.reason);
}

#[tokio::test]
async fn mysql_is_up_against_mariadb() {
    let outcome = prober(DAEMON_TIMEOUT)
        .probe(&target(ServiceName::Mysql, mariadb()))
        .await;
    assert_up(&outcome);
    assert!(outcome.server_version.unwrap().contains("MariaDB"));
    assert!(outcome.reason.contains("ERR 1045"), "{}", outcome.reason);
}

#[tokio::test]
async fn a_stopped_server_is_down() {
    let (daemon, ports) = start_nginx("nginx-stopped").unwrap();
    let prober = prober(DAEMON_TIMEOUT);
    let target = target(ServiceName::Http, ports.http);
    // Up first: a busy machine's nginx may accept before its worker answers (a clone run saw
    // the first request closed unanswered), so a few tries, 0.5 s apart.
    let mut first = prober.probe(&target).await;
    for _ in 0..10 {
        if first.up {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        first = prober.probe(&target).await;
    }
    assert_up(&first);
    drop(daemon);
    let outcome = prober.probe(&target).await;
    assert_down(&outcome, "Connection refused");
    assert_eq!(outcome.failure, Some("connect"));
}
