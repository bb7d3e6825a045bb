//! Changing the login password: the current one is checked like a login (a wrong one counts
//! towards the lock), the new one is written to the EndUser's password Secret, and every
//! session of the end user ends.

use http::StatusCode;
use jiff::Timestamp;

use super::{csrf_field, login, user_page, who};
use crate::app::{App, UserRequest, password_secret};
use crate::auth::limiter::LoginKey;
use crate::html::{esc, url_segment};
use crate::web::Reply;
use crate::writes;

/// Shortest and longest new password, in characters.
pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 128;

/// What is wrong with a new password, if anything.
pub fn problem(new: &str, confirm: &str) -> Option<Problem> {
    let len = new.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        Some(Problem::Length)
    } else if new != confirm {
        Some(Problem::Mismatch)
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Length,
    Mismatch,
    WrongCurrent,
    Unavailable,
}

pub fn form(app: &App, user: &UserRequest<'_>, problem: Option<Problem>) -> Reply {
    let texts = user.lang.texts();
    let (message, field) = match problem {
        Some(Problem::Length) => (Some(texts.password_too_short), "new_password"),
        Some(Problem::Mismatch) => (Some(texts.password_mismatch), "confirm_password"),
        Some(Problem::WrongCurrent) => (Some(texts.password_wrong), "current_password"),
        Some(Problem::Unavailable) => (Some(texts.service_unavailable), ""),
        None => (None, ""),
    };
    let error = |name: &str| -> String {
        match message.filter(|_| name == field) {
            Some(m) => format!(
                "<p class=\"error\" role=\"alert\" id=\"{name}-error\">{}</p>",
                esc(m)
            ),
            None => String::new(),
        }
    };
    let described = |name: &str| {
        if name == field {
            format!(" aria-invalid=\"true\" aria-describedby=\"{name}-error\"")
        } else if name == "new_password" {
            " aria-describedby=\"password-rules\"".to_owned()
        } else {
            String::new()
        }
    };
    let general = match (message, field) {
        (Some(m), "") => format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m)),
        _ => String::new(),
    };
    let body = format!(
        "{general}<form method=\"post\" class=\"card\">{csrf}\
         <label for=\"current_password\">{l_current}</label>{e_current}\
         <input id=\"current_password\" name=\"current_password\" type=\"password\" \
         autocomplete=\"current-password\" required maxlength=\"128\"{d_current}>\
         <label for=\"new_password\">{l_new}</label>{e_new}\
         <input id=\"new_password\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" \
         required minlength=\"{MIN_LEN}\" maxlength=\"{MAX_LEN}\"{d_new}>\
         <p class=\"hint\" id=\"password-rules\">{rules}</p>\
         <label for=\"confirm_password\">{l_confirm}</label>{e_confirm}\
         <input id=\"confirm_password\" name=\"confirm_password\" type=\"password\" \
         autocomplete=\"new-password\" required maxlength=\"{MAX_LEN}\"{d_confirm}>\
         <button type=\"submit\">{save}</button></form>",
        csrf = csrf_field(&user.session.csrf),
        l_current = esc(texts.current_password),
        e_current = error("current_password"),
        d_current = described("current_password"),
        l_new = esc(texts.new_password),
        e_new = error("new_password"),
        d_new = described("new_password"),
        rules = esc(texts.password_rules),
        l_confirm = esc(texts.confirm_password),
        e_confirm = error("confirm_password"),
        d_confirm = described("confirm_password"),
        save = esc(texts.save),
    );
    let status = match problem {
        None => StatusCode::OK,
        Some(Problem::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    user_page(app, user, status, texts.change_password, &body)
}

pub async fn submit(app: &App, user: &UserRequest<'_>) -> Reply {
    let fields = user.req.form();
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let (current, new, confirm) = (
        field("current_password"),
        field("new_password"),
        field("confirm_password"),
    );
    let reseller = user
        .session
        .owner
        .namespace
        .strip_prefix(oem_crds::reseller::NAMESPACE_PREFIX)
        .unwrap_or_default()
        .to_owned();
    let key = LoginKey {
        reseller: reseller.clone(),
        login_id: user.enduser.spec.login_id.clone(),
    };
    let address = user
        .req
        .client_ip(app.config.client_address_header.as_deref());
    match login::check_password(app, &user.enduser, &current).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            let locked = app.auth().limiter.failed(&key, address, Timestamp::now());
            if let Some(until) = locked {
                tracing::warn!(enduser = %who(user), %until, "login locked after repeated wrong passwords");
                login::publish_lock(app, user.enduser.clone(), key.clone(), Some(until));
            }
            return form(app, user, Some(Problem::WrongCurrent));
        }
        Err(()) => return form(app, user, Some(Problem::Unavailable)),
    }
    if let Some(problem) = problem(&new, &confirm) {
        return form(app, user, Some(problem));
    }
    let secret = password_secret(&user.enduser);
    if let Err(error) = writes::write_secret_key(
        &app.client,
        &secret.namespace,
        &secret.name,
        &secret.key,
        &new,
    )
    .await
    {
        tracing::warn!(enduser = %who(user), %error, "changing the login password failed");
        return form(app, user, Some(Problem::Unavailable));
    }
    {
        let mut auth = app.auth();
        auth.sessions.revoke_owner(&user.session.owner);
        auth.hashes.forget(&secret);
    }
    tracing::info!(enduser = %who(user), "login password changed; sessions ended");
    let cookies = app.cookies();
    Reply::redirect(&format!("/login/{}?m=changed", url_segment(&reseller)))
        .with_cookie(cookies.set(cookies.session_name(), "", None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_password_needs_twelve_characters_and_its_confirmation() {
        assert_eq!(problem("short", "short"), Some(Problem::Length));
        assert_eq!(
            problem(&"x".repeat(129), &"x".repeat(129)),
            Some(Problem::Length)
        );
        assert_eq!(
            problem("long enough pw", "long enough pW"),
            Some(Problem::Mismatch)
        );
        assert_eq!(problem("long enough pw", "long enough pw"), None);
        // Characters, not bytes: twelve Japanese characters are enough.
        assert_eq!(
            problem("あいうえおかきくけこさし", "あいうえおかきくけこさし"),
            None
        );
    }
}
