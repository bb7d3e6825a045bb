//! Customers (SPEC §2): the list with the specification's columns (login ID, contract name,
//! customer number, domains, disk, contract date, start date) plus phase and health, searched,
//! sorted and paged from the cache. One customer's page and its writes: `customer`.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;

use http::StatusCode;
use kube::ResourceExt;
use oem_crds::EndUser;
use oem_crds::enduser::{EndUserPhase, HealthState};

use super::{ResellerRequest, page};
use crate::app::App;
use crate::html::{esc, url_segment};
use crate::pages::overview::phase_label;
use crate::web::Reply;

/// Columns the list sorts by.
const SORTS: &[&str] = &[
    "login",
    "contract",
    "number",
    "domains",
    "disk",
    "contract_date",
    "start_date",
    "phase",
    "health",
];

fn disk_bytes(eu: &EndUser) -> f64 {
    eu.status
        .as_ref()
        .and_then(|s| s.usage.as_ref())
        .and_then(|u| u.disk.as_ref())
        .and_then(|q| oem_crds::quantity::value(&q.0))
        .unwrap_or(0.0)
}

/// Services up and services probed.
fn health(eu: &EndUser) -> (usize, usize) {
    let services = eu
        .status
        .as_ref()
        .map(|s| s.services.as_slice())
        .unwrap_or(&[]);
    let up = services
        .iter()
        .filter(|s| s.state == HealthState::Up)
        .count();
    (up, services.len())
}

fn phase(eu: &EndUser) -> Option<EndUserPhase> {
    eu.status.as_ref().and_then(|s| s.phase)
}

fn compare(a: &EndUser, b: &EndUser, sort: &str) -> Ordering {
    match sort {
        "contract" => a.spec.contract_name.cmp(&b.spec.contract_name),
        "number" => a.spec.customer_number.cmp(&b.spec.customer_number),
        "domains" => a.spec.domains.first().cmp(&b.spec.domains.first()),
        "disk" => disk_bytes(a).total_cmp(&disk_bytes(b)),
        "contract_date" => a.spec.contract_date.cmp(&b.spec.contract_date),
        "start_date" => a.spec.start_date.cmp(&b.spec.start_date),
        "phase" => format!("{:?}", phase(a)).cmp(&format!("{:?}", phase(b))),
        "health" => {
            let ratio = |eu: &EndUser| {
                let (up, all) = health(eu);
                if all == 0 {
                    2.0
                } else {
                    up as f64 / all as f64
                }
            };
            ratio(a).total_cmp(&ratio(b))
        }
        _ => a.spec.login_id.cmp(&b.spec.login_id),
    }
    .then_with(|| a.spec.login_id.cmp(&b.spec.login_id))
}

fn matches(eu: &EndUser, query: &str) -> bool {
    let q = query.to_lowercase();
    eu.spec.login_id.contains(&q)
        || eu.spec.contract_name.to_lowercase().contains(&q)
        || eu
            .spec
            .customer_number
            .as_deref()
            .is_some_and(|n| n.to_lowercase().contains(&q))
        || eu.spec.domains.iter().any(|d| d.contains(&q))
}

/// The list.
pub fn list(app: &App, r: &ResellerRequest<'_>) -> Reply {
    let t = r.texts();
    let base = r.lang.texts();
    let query = r.req.query_param("q").unwrap_or_default();
    let query = query.trim();
    let sort = r
        .req
        .query_param("sort")
        .filter(|s| SORTS.contains(&s.as_str()))
        .unwrap_or_else(|| "login".to_owned());
    let descending = r.req.query_param("dir").as_deref() == Some("desc");
    let mut rows: Vec<Arc<EndUser>> = app
        .caches
        .endusers_in(&r.namespace)
        .into_iter()
        .filter(|eu| query.is_empty() || matches(eu, query))
        .collect();
    rows.sort_by(|a, b| {
        let order = compare(a, b, &sort);
        if descending { order.reverse() } else { order }
    });
    let size = app.config.resellers.page_size;
    let pages = rows.len().div_ceil(size).max(1);
    let current = r
        .req
        .query_param("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let link = |sort: &str, desc: bool, page: usize| {
        format!(
            "{}?q={}&amp;sort={sort}&amp;dir={}&amp;page={page}",
            r.path("customers"),
            url_segment(query),
            if desc { "desc" } else { "asc" }
        )
    };
    let deleted = (r.req.query_param("m").as_deref() == Some("deleted")).then_some(t.deleted);
    let mut body = crate::pages::notice(deleted, "notice");
    let _ = write!(
        body,
        "<form method=\"get\" action=\"{action}\" class=\"search\" role=\"search\">\
         <label for=\"q\">{label}</label>\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{value}\">\
         <button type=\"submit\">{search}</button></form>\
         <p><a class=\"button\" href=\"{new}\">{add}</a></p>",
        action = r.path("customers"),
        label = esc(t.search_label),
        value = esc(query),
        search = esc(t.search),
        new = r.path("customers/new"),
        add = esc(t.new_customer),
    );
    if rows.is_empty() {
        let _ = write!(body, "<p>{}</p>", esc(t.no_customers));
        return page(r, StatusCode::OK, t.customers, &body);
    }
    body.push_str("<div class=\"scroll\"><table><thead><tr>");
    let columns = [
        ("login", t.login_id),
        ("contract", t.contract_name),
        ("number", t.customer_number),
        ("domains", t.domains),
        ("disk", t.disk),
        ("contract_date", t.contract_date),
        ("start_date", t.start_date),
        ("phase", t.phase),
        ("health", t.health),
    ];
    for (key, label) in columns {
        let here = key == sort;
        let aria = match (here, descending) {
            (true, true) => " aria-sort=\"descending\"",
            (true, false) => " aria-sort=\"ascending\"",
            _ => "",
        };
        let _ = write!(
            body,
            "<th scope=\"col\"{aria}><a href=\"{}\">{}{}</a></th>",
            link(key, here && !descending, 1),
            esc(label),
            match (here, descending) {
                (true, true) => " ▼",
                (true, false) => " ▲",
                _ => "",
            }
        );
    }
    body.push_str("</tr></thead><tbody>");
    for eu in rows.iter().skip((current - 1) * size).take(size) {
        let name = eu.name_any();
        let domains = match eu.spec.domains.as_slice() {
            [] => "-".to_owned(),
            [one] => esc(one),
            [first, rest @ ..] => format!("{} (+{})", esc(first), rest.len()),
        };
        let storage = app
            .caches
            .course(&r.namespace, &eu.spec.course_ref.name)
            .map(|c| c.spec.resources.storage.0.clone());
        let used = eu
            .status
            .as_ref()
            .and_then(|s| s.usage.as_ref())
            .and_then(|u| u.disk.as_ref())
            .map(|q| q.0.clone());
        let disk = format!(
            "{} / {}",
            esc(used.as_deref().unwrap_or("-")),
            esc(storage.as_deref().unwrap_or("-"))
        );
        let phase_text = phase(eu).map(|p| phase_label(base, p)).unwrap_or("-");
        let (up, all) = health(eu);
        let health_text = if all == 0 {
            "-".to_owned()
        } else {
            format!("{up}/{all}")
        };
        let health_class = if all == 0 {
            "unknown"
        } else if up == all {
            "up"
        } else {
            "down"
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"{href}\">{login}</a></td><td>{contract}</td><td>{number}</td>\
             <td>{domains}</td><td>{disk}</td><td>{cdate}</td><td>{sdate}</td><td>{phase}</td>\
             <td class=\"{health_class}\">{health_text}</td></tr>",
            href = r.path(&format!("customers/{}", url_segment(&name))),
            login = esc(&eu.spec.login_id),
            contract = esc(&eu.spec.contract_name),
            number = esc(eu.spec.customer_number.as_deref().unwrap_or("-")),
            cdate = esc(&eu.spec.contract_date.to_string()),
            sdate = esc(&eu.spec.start_date.to_string()),
            phase = esc(phase_text),
        );
    }
    body.push_str("</tbody></table></div>");
    let _ = write!(
        body,
        "<nav class=\"pages\" aria-label=\"{label}\"><span>{first}–{last} {of} {total}</span>",
        label = esc(t.page),
        first = (current - 1) * size + 1,
        last = (current * size).min(rows.len()),
        of = esc(t.of_total),
        total = rows.len(),
    );
    if current > 1 {
        let _ = write!(
            body,
            " <a href=\"{}\" rel=\"prev\">{}</a>",
            link(&sort, descending, current - 1),
            esc(t.previous)
        );
    }
    if current < pages {
        let _ = write!(
            body,
            " <a href=\"{}\" rel=\"next\">{}</a>",
            link(&sort, descending, current + 1),
            esc(t.next)
        );
    }
    body.push_str("</nav>");
    page(r, StatusCode::OK, t.customers, &body)
}
