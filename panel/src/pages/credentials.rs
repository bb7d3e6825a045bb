//! The end user's service credentials (docs/credentials.md): read from the hosting namespace's
//! `credentials` Secret when the page is asked for (values are never cached), and rotated by
//! writing a new value there; the operator restarts the workloads, whose pod templates carry
//! the Secret's resourceVersion, and each daemon takes the new password at start.

use std::fmt::Write;

use http::StatusCode;
use rand::distr::{Alphanumeric, SampleString};

use super::{csrf_field, notice, user_page, who};
use crate::app::{App, UserRequest};
use crate::html::esc;
use crate::web::Reply;
use crate::writes::{
    self, CREDENTIALS_SECRET, KEY_DB_PASSWORD, KEY_FTP_PASSWORD, KEY_MAIL_ACCOUNTS,
};

/// A fresh service password, as the operator makes them (24 letters and digits).
fn new_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// `mail-accounts` (one `address:password` a line) with every password replaced.
pub fn rotate_mail_accounts(current: &str) -> String {
    current
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let address = line.split_once(':').map(|(a, _)| a).unwrap_or(line);
            format!("{address}:{}\n", new_password())
        })
        .collect()
}

/// The database user of a login ID (docs/credentials.md).
pub fn database_user(login_id: &str) -> String {
    login_id.replace('-', "_")
}

pub async fn page(app: &App, user: &UserRequest<'_>) -> Reply {
    let texts = user.lang.texts();
    let eu = &user.enduser;
    let ns = &user.session.owner.namespace;
    let course = app.caches.course(ns, &eu.spec.course_ref.name);
    let hosting = eu.status.as_ref().and_then(|s| s.hosting_namespace.clone());
    let secret = match &hosting {
        Some(hosting) => writes::read_secret(&app.client, hosting, CREDENTIALS_SECRET).await,
        None => Ok(None),
    };
    let values = match secret {
        Ok(found) => found.map(|(_, values)| values),
        Err(error) => {
            tracing::warn!(enduser = %who(user), %error, "reading the credentials failed");
            let body = notice(Some(texts.service_unavailable), "error");
            return user_page(
                app,
                user,
                StatusCode::SERVICE_UNAVAILABLE,
                texts.credentials,
                &body,
            );
        }
    };
    let mut body = notice(
        (user.req.query_param("m").as_deref() == Some("rotated")).then_some(texts.rotated),
        "notice",
    );
    let Some(values) = values else {
        let _ = write!(body, "<p>{}</p>", esc(texts.not_provisioned));
        return user_page(app, user, StatusCode::OK, texts.credentials, &body);
    };
    let _ = write!(body, "<p>{}</p>", esc(texts.rotate_note));
    let services = course.map(|c| c.spec.services.clone()).unwrap_or_default();
    let value = |key: &str| values.get(key).cloned().unwrap_or_default();
    let rotate = |service: &str, label: &str| {
        format!(
            "<form method=\"post\" class=\"inline\">{}\
             <input type=\"hidden\" name=\"service\" value=\"{service}\">\
             <button type=\"submit\">{} ({})</button></form>",
            csrf_field(&user.session.csrf),
            esc(texts.rotate),
            esc(label)
        )
    };
    if services.ftp.is_some() {
        let _ = write!(
            body,
            "<section aria-labelledby=\"h-ftp\"><h2 id=\"h-ftp\">{ftp}</h2><dl>\
             <dt>{user_l}</dt><dd><code>{login}</code></dd>\
             <dt>{pw_l}</dt><dd><code class=\"secret\" id=\"ftp-password\">{pw}</code></dd></dl>{form}</section>",
            ftp = esc(texts.ftp),
            user_l = esc(texts.user_name),
            login = esc(&eu.spec.login_id),
            pw_l = esc(texts.password),
            pw = esc(&value(KEY_FTP_PASSWORD)),
            form = rotate("ftp", texts.ftp),
        );
    }
    if services.mail.is_some() {
        let _ = write!(
            body,
            "<section aria-labelledby=\"h-mail\"><h2 id=\"h-mail\">{}</h2><table><thead><tr>\
             <th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            esc(texts.mail),
            esc(texts.address),
            esc(texts.password)
        );
        for line in value(KEY_MAIL_ACCOUNTS).lines().filter(|l| !l.is_empty()) {
            let (address, password) = line.split_once(':').unwrap_or((line, ""));
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td><code class=\"secret\">{}</code></td></tr>",
                esc(address),
                esc(password)
            );
        }
        let _ = write!(
            body,
            "</tbody></table>{}</section>",
            rotate("mail", texts.mail)
        );
    }
    if services.database.is_some() {
        let db = database_user(&eu.spec.login_id);
        let _ = write!(
            body,
            "<section aria-labelledby=\"h-db\"><h2 id=\"h-db\">{}</h2><dl>\
             <dt>{}</dt><dd><code>{}</code></dd><dt>{}</dt><dd><code>{}</code></dd>\
             <dt>{}</dt><dd><code class=\"secret\" id=\"db-password\">{}</code></dd></dl>{}</section>",
            esc(texts.database),
            esc(texts.user_name),
            esc(&db),
            esc(texts.database_name),
            esc(&db),
            esc(texts.password),
            esc(&value(KEY_DB_PASSWORD)),
            rotate("database", texts.database),
        );
    }
    user_page(app, user, StatusCode::OK, texts.credentials, &body)
}

/// Issues a new password for one service (`service` = ftp, mail or database).
pub async fn rotate(app: &App, user: &UserRequest<'_>) -> Reply {
    let texts = user.lang.texts();
    let eu = &user.enduser;
    let ns = &user.session.owner.namespace;
    let course = app.caches.course(ns, &eu.spec.course_ref.name);
    let services = course.map(|c| c.spec.services.clone()).unwrap_or_default();
    let form = user.req.form();
    let key = match form.get("service").map(String::as_str) {
        Some("ftp") if services.ftp.is_some() => KEY_FTP_PASSWORD,
        Some("mail") if services.mail.is_some() => KEY_MAIL_ACCOUNTS,
        Some("database") if services.database.is_some() => KEY_DB_PASSWORD,
        _ => return crate::app::status_page(user.lang, StatusCode::BAD_REQUEST),
    };
    let Some(hosting) = eu.status.as_ref().and_then(|s| s.hosting_namespace.clone()) else {
        return crate::app::status_page(user.lang, StatusCode::CONFLICT);
    };
    let value = if key == KEY_MAIL_ACCOUNTS {
        match writes::read_secret(&app.client, &hosting, CREDENTIALS_SECRET).await {
            Ok(Some((_, values))) => {
                rotate_mail_accounts(values.get(key).map(String::as_str).unwrap_or_default())
            }
            Ok(None) => return crate::app::status_page(user.lang, StatusCode::CONFLICT),
            Err(error) => {
                tracing::warn!(enduser = %who(user), %error, "reading the credentials failed");
                let body = notice(Some(texts.service_unavailable), "error");
                return user_page(
                    app,
                    user,
                    StatusCode::SERVICE_UNAVAILABLE,
                    texts.credentials,
                    &body,
                );
            }
        }
    } else {
        new_password()
    };
    if let Err(error) =
        writes::write_secret_key(&app.client, &hosting, CREDENTIALS_SECRET, key, &value).await
    {
        tracing::warn!(enduser = %who(user), %error, "rotating a credential failed");
        let body = notice(Some(texts.service_unavailable), "error");
        return user_page(
            app,
            user,
            StatusCode::SERVICE_UNAVAILABLE,
            texts.credentials,
            &body,
        );
    }
    tracing::info!(enduser = %who(user), credential = key, "credential rotated");
    Reply::redirect(&format!(
        "{}/credentials?m=rotated",
        super::home_of(&user.session.owner)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotating_mail_accounts_keeps_the_addresses_and_changes_every_password() {
        let before = "info@shop.example.jp:aaaa\nsales@shop.example.jp:bbbb\n";
        let after = rotate_mail_accounts(before);
        let lines: Vec<_> = after.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("info@shop.example.jp:"));
        assert!(lines[1].starts_with("sales@shop.example.jp:"));
        assert!(!after.contains("aaaa") && !after.contains("bbbb"));
        assert_eq!(lines[0].len(), "info@shop.example.jp:".len() + 24);
    }

    #[test]
    fn the_database_user_follows_the_login_id() {
        assert_eq!(database_user("tanaka-shoten"), "tanaka_shoten");
    }
}
