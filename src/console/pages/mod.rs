//! The console's pages, one module each. Every page takes a [`Ctx`](super::Ctx) (a logged-in
//! user: anonymous requests go to `/login`) and shows only the tenants the user may see.

mod audit_trail;
mod files;
mod invoices;
mod overview;
mod parked;
mod reconciliation;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use super::Console;

/// Rows per page of a paginated table.
pub const PAGE_SIZE: u32 = 50;

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/parked", get(parked::list))
        .route("/parked/{id}", get(parked::show))
        .route("/parked/{id}/replay", post(parked::replay))
        .route("/parked/{id}/discard", post(parked::discard))
        .route("/parked-group/replay", post(parked::replay_group))
        .route("/parked-group/discard", post(parked::discard_group))
        .route("/invoices", get(invoices::search))
        .route(
            "/invoices/{tenant}/{exercice}/{number}",
            get(invoices::timeline),
        )
        .route("/reconciliation", get(reconciliation::choose))
        .route(
            "/reconciliation/{tenant}/{month}",
            get(reconciliation::month),
        )
        .route("/files", get(files::list))
        .route("/files/{id}/download", get(files::download))
        .route("/audit", get(audit_trail::page))
}

/// A query or form parameter, trimmed; `None` when absent or blank.
pub fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The page number asked (`page`, from 1).
pub fn page_number(params: &HashMap<String, String>) -> u32 {
    param(params, "page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// The tenants the user may see, as `<select>` options (`id`, `name (id)`).
pub fn tenant_options(console: &Console, ctx: &super::Ctx) -> Vec<(String, String)> {
    console
        .visible_tenants(ctx)
        .iter()
        .map(|t| (t.id.clone(), format!("{} ({})", t.name, t.id)))
        .collect()
}

/// The tenant a page is about: `tenant` when the user may see it, else the first they may.
pub fn chosen_tenant(
    console: &Console,
    ctx: &super::Ctx,
    params: &HashMap<String, String>,
) -> Option<String> {
    let visible = console.visible_tenants(ctx);
    param(params, "tenant")
        .filter(|t| visible.iter().any(|v| v.id == *t))
        .map(str::to_string)
        .or_else(|| visible.first().map(|t| t.id.clone()))
}

/// An HTML `<select>` with a label.
pub fn select(id: &str, label: &str, options: &[(String, String)], chosen: Option<&str>) -> String {
    use super::html::esc;
    let mut out = format!(
        "<div><label for=\"{id}\">{}</label><select id=\"{id}\" name=\"{id}\">",
        esc(label)
    );
    for (value, text) in options {
        let selected = if Some(value.as_str()) == chosen {
            " selected"
        } else {
            ""
        };
        out.push_str(&format!(
            "<option value=\"{}\"{selected}>{}</option>",
            esc(value),
            esc(text)
        ));
    }
    out.push_str("</select></div>");
    out
}

/// An HTML text `<input>` with a label.
pub fn input(id: &str, label: &str, value: Option<&str>) -> String {
    use super::html::esc;
    format!(
        "<div><label for=\"{id}\">{}</label><input id=\"{id}\" name=\"{id}\" value=\"{}\"></div>",
        esc(label),
        esc(value.unwrap_or_default())
    )
}
