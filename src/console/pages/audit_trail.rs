//! `GET /audit`: every action taken in the console, newest first.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};

use super::{PAGE_SIZE, page_number};
use crate::console::html::{esc, pager, table};
use encaisse_ledger::OpsStore;

use crate::console::{Console, Ctx, Page};

pub async fn page(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> Page {
    let l = ctx.lang;
    let page = page_number(&params);
    let offset = (page - 1) * PAGE_SIZE;
    let entries = match console
        .ledger
        .inspect(move |tx| tx.console_actions(PAGE_SIZE + 1, offset))
        .await
    {
        Ok(entries) => entries,
        Err(e) => return ctx.ledger_error(&e),
    };
    let has_next = entries.len() > PAGE_SIZE as usize;
    let rows: Vec<Vec<String>> = entries
        .iter()
        .take(PAGE_SIZE as usize)
        .map(|e| {
            vec![
                esc(&e.at),
                esc(&e.user),
                esc(&e.role),
                esc(&e.action),
                esc(e.target.as_deref().unwrap_or("")),
                esc(e.reason.as_deref().unwrap_or("")),
                esc(&e.outcome),
            ]
        })
        .collect();
    let body = table(
        l.t("Actions dans la console", "Actions taken in the console"),
        &[
            l.t("Quand (UTC)", "When (UTC)"),
            l.t("Qui", "Who"),
            l.t("Rôle", "Role"),
            l.t("Action", "Action"),
            l.t("Sur", "On"),
            l.t("Motif", "Reason"),
            l.t("Résultat", "Outcome"),
        ],
        &rows,
    ) + &pager(l, "/audit?", page, has_next);
    ctx.page(l.t("Journal des actions", "Audit trail"), &body)
}
